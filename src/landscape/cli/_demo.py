"""``landscape demo``: synthesise the demo dataset, audit it, train a head, report accuracy."""

from __future__ import annotations

from pathlib import Path

import typer

from ._output import console


def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Where the demo data and run go."),
    per_class: int = typer.Option(80, "--per-class", help="Synthetic images per class."),
    epochs: int = typer.Option(10, "--epochs", help="Head training epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed."),
) -> None:
    """Run the main job on the built-in default: synth → audit → train → evaluate.

    Trains a head on EfficientNet-Lite0 with its packaged ImageNet weights (no download), using
    the feature cache, and prints the test accuracy and where the run lives.
    """
    import shutil

    from landscape.config import load_train_config
    from landscape.data.synth import SynthSpec, generate_dataset
    from landscape.train.trainer import fit

    data = out / "data"
    if not data.is_dir():
        console.print(f"[bold]1/3[/] synthesising {per_class} images per class into {data}")
        generate_dataset(data, SynthSpec(per_class=per_class, seed=seed))
    else:
        console.print(f"[bold]1/3[/] using the synthetic dataset in {data}")
    console.print("[bold]2/3[/] auditing")
    from landscape.data.audit import audit_dataset

    found = audit_dataset(data).to_dict()
    console.print(
        f"    {found['images']} images, {len(found['classes'])} classes, "
        f"{found['findings']} findings"
    )
    run = out / "run"
    if run.exists():
        shutil.rmtree(run)
    console.print(
        "[bold]3/3[/] training a head on efficientnet_lite0 (packaged weights, cached features)"
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
    console.print(
        f"[bold green]demo done[/]: test accuracy {result.metrics['test_acc']:.3f} "
        f"(val {result.metrics['val_acc']:.3f}) on {result.metrics['n_test']} held-out images, "
        f"trained in {result.metrics['train_seconds']:.0f}s.\n"
        f"run: {run}  bundle: {result.bundle}\n"
        f"try: landscape predict {result.bundle} {data}/coast --top 3"
    )
