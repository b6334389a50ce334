"""``landscape data audit`` and ``landscape data stats``: what is in a dataset and what is wrong.

The library work is in :mod:`landscape.data.audit`; this module only draws tables and lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ._options import JsonOption
from ._output import console, print_json, progress_bar

#: Findings shown per list in human output; ``--json`` always has all of them.
_SHOWN = 10


def _counts_table(title: str, classes: Sequence[str], splits: dict[str, dict[str, int]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("class", overflow="fold")
    # Without splits the single "all" column is the total already.
    with_total = len(splits) > 1
    for split in splits:
        table.add_column(split, justify="right")
    if with_total:
        table.add_column("total", justify="right", style="bold")
    for name in classes:
        row = [splits[s].get(name, 0) for s in splits]
        cells = [str(n) if n else "[red]0[/]" for n in row] + (
            [str(sum(row))] if with_total else []
        )
        table.add_row(escape(name), *cells)
    totals = [sum(row.values()) for row in splits.values()]
    cells = [f"[bold]{n}" for n in totals] + ([str(sum(totals))] if with_total else [])
    table.add_row("[bold]total", *cells)
    return table


def _spread(summary: dict[str, Any]) -> str:
    width, height = summary.get("width"), summary.get("height")
    if not width or not height:
        return "-"
    return (
        f"{width['min']}x{height['min']} .. {width['median']:g}x{height['median']:g} .. "
        f"{width['max']}x{height['max']}"
    )


def _print_summary(data: dict[str, Any]) -> None:
    """Sizes, modes and channel statistics shared by `audit` and `stats`."""
    sizes, modes = data["sizes"], data["modes"]
    console.print(f"image size (min .. median .. max, WxH): {_spread(sizes['all'])}")
    for split, summary in sizes["by_split"].items():
        if len(sizes["by_split"]) > 1:
            console.print(f"  {split}: {_spread(summary)}")
    console.print("modes: " + ", ".join(f"{m}={n}" for m, n in modes["all"].items()))
    if data["mean"]:
        stats = data["channel_stats"]
        console.print(
            f"channel mean (RGB): {', '.join(f'{v:.4f}' for v in data['mean'])}   "
            f"std: {', '.join(f'{v:.4f}' for v in data['std'])}"
        )
        console.print(f"  [dim]{stats['note']} ({stats['images']} images)[/]")


def _print_list(title: str, items: Sequence[str]) -> None:
    if not items:
        return
    console.print(f"\n[bold yellow]{title}[/] ({len(items)})")
    for line in items[:_SHOWN]:
        console.print(f"  {line}", markup=False, highlight=False)
    if len(items) > _SHOWN:
        console.print(f"  …and {len(items) - _SHOWN} more (see --json)")


def _print_audit(data: dict[str, Any]) -> None:
    console.print(
        f"[bold]{escape(data['root'])}[/]: layout {data['layout']}, "
        f"{len(data['classes'])} classes, {data['images']} images ({data['readable']} readable)"
    )
    console.print(_counts_table("images per class and split", data["classes"], data["splits"]))
    ratios = ", ".join(
        f"{split} {ratio:.2f}" if ratio is not None else f"{split} n/a (class missing)"
        for split, ratio in data["imbalance"].items()
    )
    console.print(f"class imbalance (largest/smallest class): {ratios}")
    _print_summary(data)

    _print_list(
        "corrupt or unreadable images", [f"{c['path']}: {c['reason']}" for c in data["corrupt"]]
    )
    _print_list("skipped files", [f"{c['path']}: {c['reason']}" for c in data["skipped"]])
    _print_list(
        "leakage: copies of an image in more than one split",
        [
            f"{leak['kind']}: "
            + ", ".join(f"{p} [{s}]" for p, s in zip(leak["paths"], leak["splits"], strict=True))
            for leak in data["leakage"]
        ],
    )
    _print_list("exact duplicates (same bytes)", [", ".join(g) for g in data["exact_duplicates"]])
    _print_list(
        f"near-duplicates (pHash within {data['near_bits']} bits)",
        [", ".join(g) for g in data["near_duplicates"]],
    )
    _print_list(
        "duplicates with different labels",
        [f"{', '.join(c['paths'])} ({' vs '.join(c['labels'])})" for c in data["label_conflicts"]],
    )
    _print_list(
        "classes missing from a split",
        [f"{split}: {', '.join(names)}" for split, names in data["missing_classes"].items()],
    )
    if data["findings"]:
        console.print(f"\n[bold yellow]{data['findings']} finding(s)[/]")
    else:
        console.print("\n[bold green]no findings[/]")


def register(app: typer.Typer) -> None:
    """Add the ``audit`` and ``stats`` commands to the ``data`` group."""

    @app.command("audit")
    def audit(
        data: Path = typer.Argument(..., help="Dataset folder (any layout) or CSV manifest."),
        near_bits: int = typer.Option(
            6, "--near-bits", min=0, max=64, help="pHash distance (of 64 bits) of near-duplicates."
        ),
        as_json: JsonOption = False,
    ) -> None:
        """Find corrupt and skipped files, duplicates, near-duplicates, split leakage and imbalance.

        Every image is read and decoded once. Findings do not fail the command (exit 0); only an
        unusable dataset (missing, no images, one class) exits 1. Examples:

        - `landscape data audit demo-data`
        - `landscape data audit "Landscape Classification" --json`
        """
        from landscape.data.audit import audit_index
        from landscape.data.datasets import load_dataset

        index = load_dataset(data)
        with progress_bar("auditing", len(index.samples), enabled=not as_json) as advance:
            report = audit_index(index, near_bits=near_bits, progress=advance)
        result = report.to_dict()
        if as_json:
            print_json(result)
        else:
            _print_audit(result)

    @app.command("stats")
    def stats(
        data: Path = typer.Argument(..., help="Dataset folder (any layout) or CSV manifest."),
        as_json: JsonOption = False,
    ) -> None:
        """Summarise a dataset: images per split and class, image sizes, channel mean/std.

        Mean/std are of the training split (all images when there is no split), computed exactly
        as `landscape train --normalize dataset` computes them. Example:
        `landscape data stats demo-data`
        """
        from landscape.data.audit import stats_index
        from landscape.data.datasets import load_dataset

        index = load_dataset(data)
        with progress_bar("reading", len(index.samples), enabled=not as_json) as advance:
            summary = stats_index(index, progress=advance)
        result = summary.to_dict()
        if as_json:
            print_json(result)
            return
        console.print(
            f"[bold]{escape(result['root'])}[/]: layout {result['layout']}, "
            f"{len(result['classes'])} classes, {result['images']} images"
            + (f" ({result['unreadable']} unreadable)" if result["unreadable"] else "")
        )
        console.print(
            _counts_table("images per class and split", result["classes"], result["splits"])
        )
        _print_summary(result)
