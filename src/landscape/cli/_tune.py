"""``landscape tune``: hyper-parameter search with Optuna (pruned, resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._output import console, err_console, print_json, progress_bar


def _print_trials(result: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{len(result.trials)} trials (validation accuracy)")
    for name in ("trial", "state", "val_acc", "lr", "weight decay", "dropout", "depth", "epochs"):
        table.add_column(name, justify="right" if name not in ("state", "depth") else "left")
    for row in result.trials:

        def num(value: Any, spec: str) -> str:
            return "—" if value is None else format(value, spec)

        mark = " (default)" if row["default"] else ""
        style = "bold green" if row["trial"] == result.best_trial else None
        table.add_row(
            f"{row['trial']}{mark}",
            row["state"].lower(),
            num(row["val_acc"], ".4f"),
            num(row["lr"], ".2e"),
            num(row["weight_decay"], ".1e"),
            num(row["dropout"], ".2f"),
            row["depth"] or "—",
            str(row["epochs_run"]),
            style=style,
        )
    console.print(table)


def tune(
    data: Path = typer.Option(None, "--data", "-d", help="Dataset folder or CSV manifest."),
    config: Path = typer.Option(
        None, "--config", "-c", help="Base TrainConfig YAML (the default trial)."
    ),
    trials: int = typer.Option(20, "--trials", "-n", min=1, help="Trials in the study in all."),
    out: Path = typer.Option(
        Path("runs/tune"), "--out", "-o", help="Folder for optuna.db, trials and best.yaml."
    ),
    timeout: float = typer.Option(
        None, "--timeout", min=1, help="Stop starting new trials after this many seconds."
    ),
    epochs: int = typer.Option(
        4, "--epochs", "-e", min=2, help="Epochs per trial (small: pruning does the rest)."
    ),
    backbone: str = typer.Option(None, "--backbone", "-b", help="Backbone of the base config."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler and of every trial."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Search learning rate, weight decay, dropout and unfrozen depth (frozen / deepest:1 /
    deepest:2) with Optuna; trials that trail the median are pruned epoch by epoch.

    Trial 0 is the base config unchanged, so the best config is never worse than the default.
    The study is stored in OUT/optuna.db: running the command again continues it (up to
    --trials in all). Writes OUT/best.yaml (use it with `landscape train --config`),
    OUT/trials.csv and OUT/history.png.

    Examples:

    `landscape tune --data demo/data --trials 20 --out runs/tune`

    `landscape tune --data demo/data --config configs/paper/efficientnet_lite0.yaml --trials 30`
    """
    from landscape.config import load_train_config
    from landscape.errors import UserError
    from landscape.experiments import tune as run_tune

    if data is None and config is None:
        raise UserError("no dataset given", fix="pass --data DIR or --config X.yaml")
    overrides: dict[str, Any] = {
        "data": str(data) if data else None,
        "epochs": epochs,
        "backbone": backbone,
        "seed": seed,
        "progress": False,
    }
    base = load_train_config(config, overrides)

    def log(message: str) -> None:
        if not as_json:
            err_console.print(f"[dim]{message}[/]")

    result = run_tune(
        base,
        out,
        trials=trials,
        timeout=timeout,
        seed=seed,
        progress=lambda d, total: progress_bar(d, total, enabled=not (as_json or no_progress)),
        log=log,
    )
    summary = {
        "best_trial": result.best_trial,
        "best_val_acc": result.best_value,
        "default_val_acc": result.default_value,
        "improvement": result.improvement,
        "best_params": result.best_params,
        "trials": result.trials,
        "files": result.files,
    }
    if as_json:
        print_json(summary)
        return
    _print_trials(result)
    gain = result.improvement
    versus = (
        "" if gain is None else f" ({gain:+.4f} vs the default config's {result.default_value:.4f})"
    )
    console.print(
        f"best: trial {result.best_trial} val_acc [bold]{result.best_value:.4f}[/]{versus}"
    )
    console.print(
        f"best config: {result.files['best.yaml']}  history: {result.files['history.png']}"
    )
