"""``landscape demo``: synthesise the demo dataset, audit it, train a head, evaluate it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from landscape.errors import UserError

from ._options import SeedOption, out_option
from ._output import console, progress_bar


def demo(
    out: Annotated[Path, out_option("Where the demo data, run and report go.")] = Path("demo"),
    per_class: Annotated[
        int, typer.Option("--per-class", "-n", min=5, help="Synthetic images per class.")
    ] = 80,
    epochs: Annotated[int, typer.Option("--epochs", "-e", min=1, help="Head epochs.")] = 10,
    seed: SeedOption = 0,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a run (and its report) left by an earlier demo."),
    ] = False,
) -> None:
    """Run the main job on the built-in default: synth → audit → train → evaluate.

    Trains a head on EfficientNet-Lite0 with its packaged ImageNet weights (no download), using
    the feature cache, evaluates it on the held-out test split and prints the test accuracy and
    the path of the HTML report. An existing OUT/run is kept unless `--force`.
    """
    import shutil

    from landscape.config import load_train_config
    from landscape.data.audit import audit_dataset
    from landscape.data.synth import SynthSpec, generate_dataset
    from landscape.evaluation import evaluate_bundle
    from landscape.train.trainer import fit

    run = out / "run"
    if run.exists() and not force:
        raise UserError(
            "holds the run of an earlier demo",
            path=run,
            fix="pass --force to replace it, or --out to use another folder",
        )
    data = out / "data"
    if not data.is_dir():
        console.print(f"[bold]1/4[/] synthesising {per_class} images per class into {data}")
        generate_dataset(data, SynthSpec(per_class=per_class, seed=seed))
    else:
        console.print(f"[bold]1/4[/] using the synthetic dataset in {data}")
    console.print("[bold]2/4[/] auditing")
    found = audit_dataset(data).to_dict()
    console.print(
        f"    {found['images']} images, {len(found['classes'])} classes, "
        f"{found['findings']} findings"
    )
    if run.exists():
        shutil.rmtree(run)
    console.print(
        "[bold]3/4[/] training a head on efficientnet_lite0 (packaged weights, cached features)"
    )
    cfg = load_train_config(
        None,
        {
            "data": str(data),
            "out": str(run),
            "backbone": "efficientnet_lite0",
            "weights": "packaged",
            "policy": "frozen",
            "epochs": epochs,
            "seed": seed,
        },
    )
    result = fit(cfg)
    console.print("[bold]4/4[/] evaluating on the held-out test split")
    report = evaluate_bundle(
        result.bundle,
        run / "split.csv",
        "test",
        run / "eval",
        latency=False,
        progress=lambda description, total: progress_bar(description, total),
    )
    console.print(
        f"[bold green]demo done[/]: test accuracy {report['accuracy']:.3f} "
        f"(val {result.metrics['val_acc']:.3f}) on {result.metrics['n_test']} held-out images, "
        f"trained in {result.metrics['train_seconds']:.0f}s.\n"
        f"report: {report['files']['report.html']}\n"
        f"bundle: {result.bundle}\n"
        f"try: landscape predict {result.bundle} {data}/coast --top 3",
        soft_wrap=True,
    )
