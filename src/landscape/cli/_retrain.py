"""``landscape retrain``: the reviewed files become a candidate model, compared with the base."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import DbOption, JsonOption, NoProgressOption, SeedOption
from ._output import console, err_console, print_json


def retrain(
    db: DbOption = None,
    base: Annotated[
        str, typer.Option("--base", help="ACTIVE (default) or the model id to fine-tune from.")
    ] = "active",
    extra_data: Annotated[
        Path | None,
        typer.Option(
            "--extra-data",
            help="Extra training images (dataset folder or CSV). Default: the base bundle's own "
            "training data when it is still on disk.",
        ),
    ] = None,
    no_base_data: Annotated[
        bool, typer.Option("--no-base-data", help="Train on the reviewed files alone.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run directory (default: HOME/runs/retrain-<time>)."),
    ] = None,
    holdout: Annotated[
        float, typer.Option("--holdout", min=0.05, max=0.9, help="Reviewed files held out.")
    ] = 0.3,
    min_per_class: Annotated[
        int, typer.Option("--min-per-class", min=2, help="Reviewed files needed per class.")
    ] = 5,
    head_epochs: Annotated[int, typer.Option("--head-epochs", min=1, help="Head-only epochs.")] = 3,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Epochs with the deepest block unfrozen.")
    ] = 2,
    lr: Annotated[float, typer.Option("--lr", min=1e-7, help="Head learning rate.")] = 1e-3,
    pseudo: Annotated[
        bool,
        typer.Option(
            "--pseudo-labels",
            help="Also train on the base model's confident predictions for unreviewed files.",
        ),
    ] = False,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Pseudo-label floor.")
    ] = 0.9,
    max_extra: Annotated[
        int, typer.Option("--max-extra-per-class", min=1, help="Cap of extra images per class.")
    ] = 100,
    seed: SeedOption = 0,
    as_user: Annotated[
        str, typer.Option("--as-user", hidden=True, help="Audit as this user (the service).")
    ] = "cli",
    no_progress: NoProgressOption = False,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune a candidate from the base model on the reviewed files (corrections and
    confirmations), score it and the base on the same held-out reviewed files, and register it
    **inactive** with that comparison.

    Promote it with `landscape registry promote ID --reclassify`, or discard it with
    `landscape registry remove ID`. Nothing in the index changes until the candidate is
    registered, so a failed or interrupted retrain leaves everything as it was.

    Examples:

    `landscape retrain`

    `landscape retrain --base efficientnet_lite0-1a2b3c4d5e6f --no-base-data --epochs 3`

    `landscape retrain --pseudo-labels --min-confidence 0.95`
    """
    from landscape.index.db import open_index
    from landscape.lifecycle import RetrainOptions
    from landscape.lifecycle import retrain as run_retrain
    from landscape.lifecycle.retrain import STEPS

    options = RetrainOptions(
        base=base,
        extra_data=extra_data,
        use_base_data=not no_base_data,
        out=out,
        holdout=holdout,
        min_per_class=min_per_class,
        head_epochs=head_epochs,
        epochs=epochs,
        lr=lr,
        pseudo_labels=pseudo,
        min_confidence=min_confidence,
        max_extra_per_class=max_extra,
        seed=seed,
        progress=not (no_progress or as_json),
    )

    def report(step: int, message: str) -> None:
        # One line per step on stderr: the service's job page reads them from the log.
        err_console.print(f"[bold][{step}/{STEPS}][/] {message}", highlight=False, soft_wrap=True)

    engine = open_index(db)
    try:
        result = run_retrain(engine, options, user=as_user, report=report)
    finally:
        engine.dispose()
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    comparison = result.comparison
    console.print(
        f"[bold green]candidate[/] {result.model_id} (inactive) from {result.base_model_id}: "
        f"held-out accuracy {comparison['base']['accuracy']:.3f} → "
        f"{comparison['candidate']['accuracy']:.3f}, macro-F1 {comparison['base']['macro_f1']:.3f}"
        f" → {comparison['candidate']['macro_f1']:.3f} on {comparison['held_out']} files"
    )
    console.print(f"promote: landscape registry promote {result.model_id} --reclassify")
