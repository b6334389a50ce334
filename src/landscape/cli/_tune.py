"""``landscape tune``: hyper-parameter search with Optuna (pruned, resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._config_options import config_flags, with_config_flags
from ._options import ConfigFileOption, JsonOption, NoProgressOption, SeedOption, out_option
from ._output import console, err_console, print_json, progress_bar

_TRIAL_EPOCHS = 4


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


@with_config_flags(
    config_flags(
        "data",
        "backbone",
        "weights",
        "head.kind",
        "epochs",
        "batch_size",
        "crop",
        "max_per_class",
        "num_workers",
    )
)
def tune(
    overrides: dict[str, Any],
    config: ConfigFileOption = None,
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Trials in the study in all.")
    ] = 20,
    out: Annotated[Path, out_option("Folder for optuna.db, trials and best.yaml.")] = Path(
        "runs/tune"
    ),
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help="Stop starting new trials after this many seconds."),
    ] = None,
    seed: SeedOption = 0,
    no_progress: NoProgressOption = False,
    as_json: JsonOption = False,
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

    if "data" not in overrides and config is None:
        raise UserError("no dataset given", fix="pass --data DIR or --config X.yaml")
    # Few epochs per trial: pruning stops the poor ones, the best config trains for longer.
    overrides.setdefault("epochs", _TRIAL_EPOCHS)
    overrides.update(seed=seed, progress=False)
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
