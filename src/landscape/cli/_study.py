"""``landscape study``: run a grid of training runs from a YAML file and compare them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ._options import JsonOption, NoProgressOption, out_option
from ._output import console, err_console, print_json, progress_bar


def _parse_seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of integers") from exc


def _print_table(result: Any) -> None:
    from rich.table import Table

    from landscape.experiments import format_mean_std

    table = Table(title=f"study {result.name} ({result.size}): {result.counts['runs']} runs")
    for name in ("setting", "seeds", "accuracy", "macro-F1", "ms/img", "train s", ""):
        table.add_column(name, justify="left" if name in ("setting", "") else "right")
    for row in result.rows:
        flag = "★ best" if row.best else "≈ best" if row.near_best else ""
        if row.status != "ok":
            flag = f"[red]{row.status}[/]"
        table.add_row(
            row.setting,
            f"{row.n_ok}/{row.n_seeds}",
            format_mean_std(row.accuracy_mean, row.accuracy_std),
            format_mean_std(row.macro_f1_mean, row.macro_f1_std),
            "—" if row.latency_ms is None else f"{row.latency_ms:.2f}",
            "—" if row.train_seconds is None else f"{row.train_seconds:.1f}",
            flag,
        )
    console.print(table)


def study(
    study_file: Path = typer.Argument(..., help="Study YAML (see configs/study-demo.yaml)."),
    out: Annotated[
        Path | None, out_option("Output folder (default: studies/NAME from the file).")
    ] = None,
    data: Path = typer.Option(
        None, "--data", "-d", help="Dataset to use instead of the file's `data:`."
    ),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, help="Runs in parallel processes (capped by cores and memory)."
    ),
    size: Annotated[
        Literal["full", "tiny"],
        typer.Option("--size", help="tiny: 1 epoch, a few images (a smoke test of the grid)."),
    ] = "full",
    seeds: str = typer.Option(
        None, "--seeds", help="Seeds to use instead of the file's, e.g. 0,1."
    ),
    no_progress: NoProgressOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run every run of a study (grid × runs × sizes × seeds), skipping finished ones, and
    write a comparison table (CSV, Markdown, sortable HTML, JSON) with plots into OUT.

    A run that fails is recorded with its error and the study goes on; re-running the same
    command retries the failed runs and reuses the finished ones.

    Examples:

    `landscape study configs/study-demo.yaml --size tiny`

    `landscape study configs/paper/study.yaml --out studies/paper --jobs 2`

    `landscape study configs/paper/study.yaml --data ~/landscape-12k --seeds 0,1,2`
    """
    import json

    from landscape.errors import UserError
    from landscape.experiments import failure_groups, load_study, run_study

    spec = load_study(study_file)
    target = out if out is not None else Path("studies") / spec.name
    quiet = as_json or no_progress

    def log(message: str) -> None:
        if not as_json:
            err_console.print(f"[dim]{message}[/]")

    result = run_study(
        spec,
        target,
        study_file=study_file,
        data=data,
        size="tiny" if size == "tiny" else "full",
        jobs=jobs,
        seeds=_parse_seeds(seeds),
        progress=lambda description, total: progress_bar(description, total, enabled=not quiet),
        log=log,
    )
    if as_json:
        print_json(json.loads(Path(result.files["results.json"]).read_text()))
    else:
        _print_table(result)
        for names, error in failure_groups(result.records):
            err_console.print(f"[red]failed[/] ×{len(names)} ({', '.join(names)}): {error}")
        console.print(f"report: {result.files['results.html']}")
    if result.counts["ok"] == 0:
        first = next(r["error"] for r in result.records if r["status"] != "ok")
        raise UserError(
            f"all {result.counts['runs']} runs of the study failed (first: {first})",
            fix=f"see {result.files['results.md']}",
        )
