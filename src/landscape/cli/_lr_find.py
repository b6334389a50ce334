"""``landscape lr-find``: learning-rate range test with a plot (fastai's ``lr_find``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from landscape.errors import UserError

from ._output import console, print_json


def lr_find(
    data: Path = typer.Option(
        None, "--data", help="Dataset folder (class folders or splits) or CSV."
    ),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config; flags override keys."),
    backbone: str = typer.Option(
        None, "--backbone", "-b", help="Backbone name (`landscape models list`)."
    ),
    weights: str = typer.Option(None, "--weights", "-w", help="packaged | hub | none | PATH."),
    policy: str = typer.Option(None, "--policy", "-p", help="frozen | deepest:N | all."),
    head: str = typer.Option(None, "--head", help="linear | mlp."),
    batch_size: int = typer.Option(None, "--batch-size", help="Batch size."),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd | adam | adamw."),
    weight_decay: float = typer.Option(None, "--weight-decay", help="Weight decay."),
    augmentation: str = typer.Option(
        None, "--augmentation", "--aug", help="none | paper | strong."
    ),
    max_per_class: int = typer.Option(
        None, "--max-per-class", help="Cap training images per class."
    ),
    seed: int = typer.Option(None, "--seed", help="Seed (split, init, shuffling)."),
    workers: int = typer.Option(
        None, "--workers", help="DataLoader workers (default: from cores)."
    ),
    start: float = typer.Option(1e-7, "--start", help="First learning rate."),
    end: float = typer.Option(10.0, "--end", help="Last learning rate."),
    steps: int = typer.Option(100, "--steps", help="Mini-batches (learning rates) to try."),
    out: Path = typer.Option(
        Path("runs/lr-find"), "--out", "-o", help="Folder for lr_find.png and lr_find.csv."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Learning-rate range test: train briefly with an exponentially growing learning rate and
    suggest one where the (smoothed) loss falls fastest; writes lr_find.png and lr_find.csv.

    The data, model, freezing and optimiser are those `landscape train` would use with the same
    options (a frozen backbone runs on cached features); nothing is trained for keeps.

    Examples:
    `landscape lr-find --data demo-data --backbone efficientnet_lite0 --out runs/lr`
    `landscape lr-find --config configs/paper/resnet18.yaml --policy deepest:1 --json`
    """
    from landscape.config import load_train_config
    from landscape.train.lr_find import lr_find as run_lr_find

    if data is None and config is None:
        raise UserError("no dataset given", fix="pass --data DIR or --config X.yaml")
    overrides: dict[str, Any] = {
        "data": str(data) if data else None,
        "backbone": backbone,
        "weights": weights,
        "policy": policy,
        "batch_size": batch_size,
        "augmentation": augmentation,
        "max_per_class": max_per_class,
        "seed": seed,
        "num_workers": workers,
        "progress": False if (no_progress or as_json) else None,
        "head": {"kind": head} if head else None,
    }
    optim = {"name": optimizer, "weight_decay": weight_decay}
    overrides["optim"] = {k: v for k, v in optim.items() if v is not None} or None
    cfg = load_train_config(config, overrides)
    result = run_lr_find(cfg, out=out, start=start, end=end, steps=steps)
    if as_json:
        print_json(result.to_dict())
        return
    s = result.suggestions
    console.print(
        f"[bold green]suggested learning rate {result.suggestion:.2e}[/] (steepest descent); "
        f"valley {s['valley']:.2e}, minimum/10 {s['minimum']:.2e}"
    )
    ended = "loss diverged" if result.diverged else "range completed"
    console.print(
        f"{len(result.lrs)} steps from {result.start:.0e} ({ended}) → "
        f"{result.files['png']}, {result.files['csv']}",
        soft_wrap=True,
    )
