"""Workbench commands: ``train``, ``predict``, ``evaluate``, ``study``, ``tune``, ``export``,
``lr-find`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from landscape.errors import UserError

from ._output import console, err_console, print_json


def _collect_images(paths: list[Path]) -> list[Path]:
    from landscape.data.io import is_image_path

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p))
            if not found:
                raise UserError("folder holds no images", path=path, fix="pass image files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError("does not exist", path=path, fix="check the path")
    return files


def train(
    data: Path = typer.Option(
        None, "--data", help="Dataset folder (class folders or splits) or CSV."
    ),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config; flags override keys."),
    backbone: str = typer.Option(
        None, "--backbone", "-b", help="Backbone name (`landscape models list`)."
    ),
    weights: str = typer.Option(None, "--weights", "-w", help="packaged | hub | none | PATH."),
    sha256: str = typer.Option(None, "--sha256", help="Expected sha256 of a --weights PATH."),
    policy: str = typer.Option(None, "--policy", "-p", help="frozen | deepest:N | all."),
    bn: str = typer.Option(None, "--bn", help="BatchNorm of frozen blocks: freeze | train."),
    head: str = typer.Option(
        None,
        "--head",
        help="linear | mlp (Linear-ReLU-Dropout-Linear) | svm | logreg (scikit-learn on features).",
    ),
    layer: str = typer.Option(
        None,
        "--layer",
        help="svm/logreg: backbone module giving the features (e.g. features.23, layer3); "
        "default: the pooled output.",
    ),
    c: float = typer.Option(None, "--C", help="svm/logreg: inverse regularisation strength."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Epochs (of the last stage)."),
    fine_tune: int = typer.Option(
        None, "--fine-tune", help="Head-only epochs before unfreezing --policy."
    ),
    batch_size: int = typer.Option(None, "--batch-size", help="Batch size."),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd | adam | adamw."),
    lr: float = typer.Option(
        None, "--lr", help="Learning rate (head; backbone × backbone_lr_mult)."
    ),
    weight_decay: float = typer.Option(
        None, "--weight-decay", help="Weight decay (not on norms/biases)."
    ),
    scheduler: str = typer.Option(None, "--scheduler", help="none | plateau | cosine | onecycle."),
    augmentation: str = typer.Option(
        None, "--augmentation", "--aug", help="none | paper | strong."
    ),
    mixup: float = typer.Option(None, "--mixup", help="MixUp alpha (0 = off)."),
    cutmix: float = typer.Option(None, "--cutmix", help="CutMix alpha (0 = off)."),
    normalize: str = typer.Option(None, "--normalize", help="pretrained | dataset."),
    max_per_class: int = typer.Option(
        None, "--max-per-class", help="Cap training images per class."
    ),
    cache_features: str = typer.Option(None, "--cache-features", help="auto | on | off."),
    seed: int = typer.Option(None, "--seed", help="Seed (split, init, shuffling)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (default runs/latest)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this directory."),
    workers: int = typer.Option(
        None, "--workers", help="DataLoader workers (default: from cores)."
    ),
    accelerator: str = typer.Option(None, "--accelerator", help="cpu | gpu | auto."),
    devices: str = typer.Option(None, "--devices", help="Devices (e.g. 2) for data-parallel runs."),
    strategy: str = typer.Option(None, "--strategy", help="auto | ddp."),
    precision: str = typer.Option(None, "--precision", help="32 | bf16."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    tensorboard: bool = typer.Option(
        False, "--tensorboard", help="Also log to RUN_DIR/tensorboard (extra: tensorboard)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train a classifier on a dataset and write a model bundle to RUN_DIR/bundle.

    Examples:
    `landscape train --data demo-data --backbone efficientnet_lite0 --weights packaged
    --policy frozen --epochs 10 --out runs/demo`
    `landscape train --config configs/paper/resnet18.yaml --epochs 3`
    `landscape train --resume runs/demo`
    `landscape train --data scenes --backbone vgg16 --weights hub --head svm --layer features.23
    --out runs/vgg-svm`
    """
    from landscape.config import load_train_config, load_yaml
    from landscape.train.classic import CLASSIC_HEADS, fit_classic
    from landscape.train.trainer import fit
    from landscape.train.trainer import resume as resume_run

    overrides: dict[str, Any] = {
        "data": str(data) if data else None,
        "backbone": backbone,
        "weights": weights,
        "weights_sha256": sha256,
        "policy": policy,
        "bn": bn,
        "epochs": epochs,
        "batch_size": batch_size,
        "augmentation": augmentation,
        "mixup": mixup,
        "cutmix": cutmix,
        "normalize": normalize,
        "layer": layer,
        "max_per_class": max_per_class,
        "cache_features": cache_features,
        "seed": seed,
        "out": str(out) if out else None,
        "num_workers": workers,
        "accelerator": accelerator,
        "devices": int(devices) if devices and devices.isdigit() else devices,
        "strategy": strategy,
        "precision": precision,
        "progress": False if (no_progress or as_json) else None,
        "tensorboard": True if tensorboard else None,
    }
    optim = {"name": optimizer, "lr": lr, "weight_decay": weight_decay, "scheduler": scheduler}
    overrides["optim"] = {k: v for k, v in optim.items() if v is not None} or None
    overrides["head"] = {k: v for k, v in {"kind": head, "C": c}.items() if v is not None} or None
    if fine_tune:
        overrides["fine_tune"] = {"head_epochs": fine_tune, "unfreeze": policy or "deepest:1"}
        overrides["policy"] = None
    if resume is not None:
        saved = resume / "config.yaml"
        if saved.is_file() and (load_yaml(saved).get("head") or {}).get("kind") in CLASSIC_HEADS:
            raise UserError(
                "an svm/logreg run is fitted in one go and has nothing to resume",
                path=resume,
                fix="run `landscape train` again with a new --out (features are cached)",
            )
        result = resume_run(resume, {k: v for k, v in overrides.items() if k == "progress"})
    else:
        if data is None and config is None:
            raise UserError("no dataset given", fix="pass --data DIR or --config X.yaml")
        cfg = load_train_config(config, overrides)
        result = fit_classic(cfg) if cfg.head.kind in CLASSIC_HEADS else fit(cfg)
    if not result.is_main:
        return  # an extra process of a data-parallel run: the main one reports
    summary = {"run_dir": str(result.run_dir), "bundle": str(result.bundle), **result.metrics}
    if as_json:
        print_json(summary)
        return
    test = result.metrics.get("test_acc")
    console.print(
        f"[bold green]done[/] val_acc={result.metrics['val_acc']:.4f}"
        + (f" test_acc={test:.4f}" if test is not None else "")
        + f" in {result.metrics['train_seconds']:.1f}s → {result.bundle}"
    )


def predict(
    bundle: Path = typer.Argument(..., help="Model bundle (folder or .landscape)."),
    paths: list[Path] = typer.Argument(..., help="Image files or folders."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per batch."),
    top: int = typer.Option(3, "--top", help="How many classes to show per image."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON array."),
    backend: str = typer.Option(
        "torch", "--backend", help="torch | onnx | onnx-int8 (after `landscape export`)."
    ),
) -> None:
    """Classify images with a model bundle; prints label, confidence and top-k.

    Example: `landscape predict runs/demo/bundle photos/ --json`
    """
    from landscape.data.io import open_image
    from landscape.errors import ImageDecodeError
    from landscape.inference.predictor import Predictor

    files = _collect_images(paths)
    predictor = Predictor.from_bundle(bundle, backend=backend)
    rows: list[dict[str, Any]] = []
    good: list[tuple[Path, Any]] = []
    for file in files:
        try:
            good.append((file, open_image(file)))
        except ImageDecodeError as exc:
            rows.append({"path": str(file), "error": str(exc)})
    for start in range(0, len(good), batch_size):
        chunk = good[start : start + batch_size]
        for (file, _), pred in zip(chunk, predictor.predict([im for _, im in chunk]), strict=True):
            rows.append({"path": str(file), **pred.to_dict(), "top": pred.top(top)})
    order = {str(f): i for i, f in enumerate(files)}
    rows.sort(key=lambda r: order[r["path"]])
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            if "error" in row:
                err_console.print(f"[red]skipped[/] {row['error']}")
                continue
            tops = "  ".join(f"{c} {p:.2f}" for c, p in row["top"])
            flag = " [yellow](unknown)[/]" if row["is_unknown"] else ""
            console.print(
                f"{row['path']}: [bold]{row['label']}[/] {row['confidence']:.3f}{flag}  | {tops}",
                soft_wrap=True,
            )
    if rows and all("error" in r for r in rows):
        raise UserError("no image could be decoded", fix="check the files")


# Commands living in their own module ``landscape.cli.<module>`` as function ``<attr>``.
# A module not written yet registers a placeholder that says so (exit 1), never pretends.
# Command modules import heavy libraries inside the function, so --help stays fast.
_PLUGGED: tuple[tuple[str, str, str, str], ...] = (
    ("evaluate", "_evaluate", "evaluate", "Evaluate a bundle on a dataset."),
    ("study", "_study", "study", "Run a grid of training runs from a YAML file and compare them."),
    ("tune", "_tune", "tune", "Search hyper-parameters with Optuna."),
    ("export", "_export", "export", "Export a bundle to ONNX with a parity check."),
    ("lr-find", "_lr_find", "lr_find", "Learning-rate range test with a plot."),
)


def register(app: typer.Typer) -> None:
    """Add the workbench commands to the root app."""
    import importlib

    from . import _demo
    from ._pending import register_pending

    app.command("train")(train)
    app.command("predict")(predict)
    app.command("demo")(_demo.demo)
    for name, module_name, attr, doc in _PLUGGED:
        try:
            module = importlib.import_module(f"{__package__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module_name}":
                raise
            register_pending(app, name, doc)
            continue
        app.command(name)(getattr(module, attr))
