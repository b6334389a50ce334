"""Workbench commands: ``train``, ``predict``, ``evaluate``, ``study``, ``tune``, ``export``,
``lr-find`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from landscape.config import CLASSIC_HEADS
from landscape.errors import UserError

from ._config_options import config_flags, with_config_flags
from ._options import (
    BackendOption,
    BatchSizeOption,
    ConfigFileOption,
    EveryOption,
    JsonOption,
    MinSegmentOption,
    NoProgressOption,
)
from ._output import console, err_console, print_json, print_timeline


def _collect_images(paths: list[Path]) -> list[Path]:
    from landscape.data.io import is_image_path
    from landscape.data.video_frames import is_video_path

    def wanted(path: Path) -> bool:
        return is_image_path(path) or is_video_path(path)

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and wanted(p))
            if not found:
                raise UserError(
                    "folder holds no images or videos", path=path, fix="pass image or video files"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError("does not exist", path=path, fix="check the path")
    return files


@with_config_flags(config_flags())
def train(
    overrides: dict[str, Any],
    config: ConfigFileOption = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue the interrupted run in this directory."),
    ] = None,
    no_progress: NoProgressOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train a classifier on a dataset and write a model bundle to RUN_DIR/bundle.

    Every flag sets the TrainConfig key of the same name (see `--config`); `--fine-tune E1`
    trains the head alone for E1 epochs, then unfreezes `--policy` (default deepest:1).
    `--head logreg|svm` fit scikit-learn on frozen features over every training image, with C
    chosen by cross-validation (`--C auto`); prefer logreg, which scored 3 points above the
    linear SVM on real scene photos.

    Examples:

    `landscape train --data demo-data --backbone efficientnet_lite0 --weights packaged
    --policy frozen --epochs 10 --out runs/demo`

    `landscape train --config configs/paper/resnet18.yaml --epochs 3`

    `landscape train --resume runs/demo`

    `landscape train --data scenes --head logreg --layer blocks.5 --out runs/logreg`
    """
    from landscape.config import load_train_config, load_yaml
    from landscape.train.trainer import fit
    from landscape.train.trainer import resume as resume_run

    if no_progress or as_json:
        overrides["progress"] = False
    if "fine_tune" in overrides:
        overrides["fine_tune"]["unfreeze"] = overrides.pop("policy", "deepest:1")
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
        if "data" not in overrides and config is None:
            raise UserError("no dataset given", fix="pass --data DIR or --config X.yaml")
        result = fit(load_train_config(config, overrides))
    if not result.is_main:
        return  # an extra process of a data-parallel run: the main one reports
    summary = {"run_dir": str(result.run_dir), "bundle": str(result.bundle), **result.metrics}
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[bold green]done[/] {_score_line(result.metrics)} in "
        f"{result.metrics['train_seconds']:.1f}s → {result.bundle}"
    )


def _score_line(metrics: dict[str, Any]) -> str:
    parts = [
        f"{key}={metrics[key]:.4f}"
        for key in ("val_acc", "cv_acc", "test_acc")
        if metrics.get(key) is not None
    ]
    if metrics.get("C_search"):
        parts.append(f"C={metrics['C']:g}")
    return " ".join(parts)


def _is_video(path: Path) -> bool:
    from landscape.index.sniff import sniff_file

    try:
        return sniff_file(path).media_type == "video"
    except OSError:
        return False  # unreadable: the image path reports it


def _video_row(predictor: Any, path: Path, every: float, min_segment: float) -> dict[str, Any]:
    from landscape.inference.video import VideoError, classify_video

    try:
        timeline = classify_video(predictor, path, every=every, min_segment=min_segment)
    except VideoError as exc:
        return {"path": str(path), "media": "video", "error": str(exc)}
    return {"path": str(path), "media": "video", **timeline.to_dict()}


def predict(
    bundle: Path = typer.Argument(..., help="Model bundle (folder or .landscape)."),
    paths: list[Path] = typer.Argument(..., help="Image or video files, or folders."),
    batch_size: BatchSizeOption = 32,
    top: Annotated[int, typer.Option("--top", min=1, help="Classes shown per image.")] = 3,
    every: EveryOption = 1.0,
    min_segment: MinSegmentOption = 2.0,
    as_json: JsonOption = False,
    backend: BackendOption = "torch",
) -> None:
    """Classify images, and give videos a timeline of landscape segments.

    An image gets its label, confidence and top-k; a video (told from its bytes) gets segments
    (`00:00–00:04 coast 0.93 …`) and its dominant label; `--json` gives `segments` and
    `dominant` for each video.

    Example: `landscape predict runs/demo/bundle photos/ clip.mp4 --json`
    """
    from landscape.data.io import open_image
    from landscape.errors import ImageDecodeError
    from landscape.inference.predictor import Predictor

    files = _collect_images(paths)
    predictor = Predictor.from_bundle(bundle, backend=backend)
    rows: list[dict[str, Any]] = []
    good: list[tuple[Path, Any]] = []
    for file in files:
        if _is_video(file):
            rows.append(_video_row(predictor, file, every, min_segment))
            continue
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
            elif row.get("media") == "video":
                print_timeline(row["path"], row)
            else:
                tops = "  ".join(f"{c} {p:.2f}" for c, p in row["top"])
                flag = " [yellow](unknown)[/]" if row["is_unknown"] else ""
                console.print(
                    f"{row['path']}: [bold]{row['label']}[/] {row['confidence']:.3f}{flag}  "
                    f"| {tops}",
                    soft_wrap=True,
                )
    if rows and all("error" in r for r in rows):
        raise UserError("no image or video could be decoded", fix="check the files")


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
