"""``landscape lr-find``: learning-rate range test with a plot (fastai's ``lr_find``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from landscape.errors import UserError

from ._config_options import config_flags, with_config_flags
from ._options import ConfigFileOption, JsonOption, NoProgressOption, out_option
from ._output import console, print_json


@with_config_flags(
    config_flags(
        "data",
        "backbone",
        "weights",
        "policy",
        "head.kind",
        "batch_size",
        "optim.name",
        "optim.weight_decay",
        "augmentation",
        "crop",
        "max_per_class",
        "seed",
        "num_workers",
    )
)
def lr_find(
    overrides: dict[str, Any],
    config: ConfigFileOption = None,
    start: Annotated[float, typer.Option("--start", min=0, help="First learning rate.")] = 1e-7,
    end: Annotated[float, typer.Option("--end", min=0, help="Last learning rate.")] = 10.0,
    steps: Annotated[
        int, typer.Option("--steps", min=2, help="Mini-batches (learning rates) to try.")
    ] = 100,
    out: Annotated[Path, out_option("Folder for lr_find.png and lr_find.csv.")] = Path(
        "runs/lr-find"
    ),
    no_progress: NoProgressOption = False,
    as_json: JsonOption = False,
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

    if "data" not in overrides and config is None:
        raise UserError("no dataset given", fix="pass --data DIR or --config X.yaml")
    if no_progress or as_json:
        overrides["progress"] = False
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
