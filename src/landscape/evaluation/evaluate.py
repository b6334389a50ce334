"""``evaluate_bundle``: score a dataset split with a bundle and write the evaluation's files.

Scoring goes through :class:`landscape.inference.Predictor` (bundle preprocessing, the same
``logits`` → ``predict_logits`` path as ``landscape predict``), so every number in a report is
what a user of the bundle gets. Nothing here imports training code.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.data.datasets import SPLITS, DatasetIndex, Sample, load_dataset
from landscape.errors import DatasetError, ImageDecodeError
from landscape.inference import Predictor
from landscape.models.bundle import update_bundle_meta

from .calibration import (
    apply_temperature,
    expected_calibration_error,
    reliability_bins,
)
from .calibration import (
    fit_temperature as fit_temperature_on,
)
from .latency import measure_latency, model_facts
from .metrics import classification_metrics
from .report import MistakeRow, write_report

__all__ = ["EVAL_SPLITS", "ProgressFactory", "evaluate_bundle", "select_split"]

#: Values accepted for ``split``: one of the dataset splits, or every image.
EVAL_SPLITS: tuple[str, ...] = (*SPLITS, "all")

#: ``progress(description, total)`` → a context manager yielding ``advance(n)``; the CLI passes
#: :func:`landscape.cli._output.progress_bar`, which has exactly this shape.
ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


def _no_progress(description: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    def advance(n: int = 1) -> None:
        return None

    return nullcontext(advance)


@dataclass
class _Scored:
    """Images that decoded, their raw logits, and the ones that did not."""

    samples: list[Sample]
    logits: torch.Tensor
    skipped: list[tuple[Path, str]]


def select_split(index: DatasetIndex, split: str | None) -> tuple[str, list[Sample]]:
    """The samples to evaluate and the split's name.

    ``None`` means: ``test`` when the data has splits, every image when it has none.
    ``"all"`` is every image whatever its split. A split the data lacks is a DatasetError.
    """
    if split is not None and split not in EVAL_SPLITS:
        raise DatasetError(f"unknown split {split!r}", fix=f"use one of {', '.join(EVAL_SPLITS)}")
    if split == "all" or (split is None and not index.splits):
        return "all", list(index.samples)
    chosen = split or "test"
    return chosen, index.subset(chosen)


def _check_classes(index: DatasetIndex, bundle_classes: Sequence[str], data: Path) -> None:
    labels = sorted({s.label for s in index.samples})
    extra = [c for c in labels if c not in bundle_classes]
    if extra:
        raise DatasetError(
            f"class(es) {', '.join(extra)} of the data are not among the bundle's classes "
            f"({', '.join(bundle_classes)})",
            path=data,
            fix="evaluate on data whose classes the model knows, or re-train with them",
        )


def _load(predictor: Predictor, sample: Sample) -> torch.Tensor | str:
    try:
        return predictor.preprocess(sample.path)
    except ImageDecodeError as exc:
        return str(exc)


def _score(
    predictor: Predictor,
    samples: Sequence[Sample],
    batch_size: int,
    progress: ProgressFactory,
    description: str,
) -> _Scored:
    """Decode + preprocess in a thread pool one batch ahead while the model runs on the last."""
    kept: list[Sample] = []
    skipped: list[tuple[Path, str]] = []
    chunks: list[torch.Tensor] = []
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    workers = max(1, min(4, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress(description, len(samples)) as advance,
    ):

        def submit(batch: Sequence[Sample]) -> list[Future[torch.Tensor | str]]:
            return [pool.submit(_load, predictor, s) for s in batch]

        pending = submit(batches[0]) if batches else []
        for i, batch in enumerate(batches):
            loaded = [f.result() for f in pending]
            pending = submit(batches[i + 1]) if i + 1 < len(batches) else []
            tensors: list[torch.Tensor] = []
            for sample, item in zip(batch, loaded, strict=True):
                if isinstance(item, str):
                    skipped.append((sample.path, item))
                else:
                    kept.append(sample)
                    tensors.append(item)
            if tensors:
                chunks.append(predictor.logits(torch.stack(tensors)))
            advance(len(batch))
    n_classes = len(predictor.classes)
    logits = torch.cat(chunks) if chunks else torch.zeros((0, n_classes))
    return _Scored(kept, logits, skipped)


def _targets(samples: Sequence[Sample], classes: Sequence[str]) -> np.ndarray[Any, Any]:
    position = {c: i for i, c in enumerate(classes)}
    return np.array([position[s.label] for s in samples], dtype=np.int64)


def _loss_rows(
    samples: Sequence[Sample],
    probs: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    classes: Sequence[str],
) -> list[MistakeRow]:
    rows = []
    for sample, row, t in zip(samples, probs, y, strict=True):
        best = int(row.argmax())
        p_true = float(row[t])
        rows.append(
            MistakeRow(
                path=sample.path,
                true=classes[t],
                predicted=classes[best],
                confidence=float(row[best]),
                p_true=p_true,
                loss=-math.log(max(p_true, 1e-12)),
            )
        )
    rows.sort(key=lambda r: (-r.loss, str(r.path)))
    return rows


def _notes(
    predictor: Predictor, index: DatasetIndex, data: Path, split_name: str, bundle: Path
) -> list[str]:
    notes: list[str] = []
    if split_name == "train":
        notes.append("the train split is what the model learned from: its accuracy is optimistic")
    trained_on = (predictor.bundle.meta.get("dataset") or {}).get("root")
    if split_name == "all" and trained_on and Path(trained_on) == data.resolve():
        manifest = Path(bundle).parent / "split.csv"
        hint = (
            f"; pass {manifest} as --data for its held-out test split" if manifest.is_file() else ""
        )
        notes.append(
            "this is the dataset the model was trained on and it has no split folders, so every "
            f"image is evaluated, training images included: accuracy is optimistic{hint}"
        )
    return notes


def evaluate_bundle(
    bundle: Path,
    data: Path,
    split: str | None,
    out: Path,
    *,
    fit_temperature: bool = True,
    latency: bool = True,
    calibrate: bool = False,
    device: str = "cpu",
    batch_size: int = 32,
    latency_runs: int = 30,
    latency_batches: int = 3,
    gallery: bool = True,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Evaluate ``bundle`` on ``split`` of ``data``; write metrics, tables, figures and HTML.

    - ``split``: ``None`` (test when the data has splits, else every image), a split name, or
      ``"all"``.
    - ``fit_temperature``: fit ``T`` on the data's val split (when it has one) and report the
      ECE after scaling; ``calibrate`` also stores ``T`` in the bundle (needs a val split).
    - ``latency``: time the model alone and end to end (see :mod:`.latency`).

    Returns the content of ``metrics.json`` plus ``"files"`` (name → path of each output).
    Raises :class:`DatasetError` for a missing split, classes the bundle lacks, or when no image
    could be decoded.
    """
    bundle, data, out = Path(bundle), Path(data), Path(out)
    progress = progress or _no_progress
    predictor = Predictor.from_bundle(bundle, device=device)
    classes = list(predictor.classes)
    # One class is enough to evaluate (a subset of the bundle's classes is fine).
    index = load_dataset(data, min_classes=1)
    _check_classes(index, classes, data)
    split_name, samples = select_split(index, split)
    fit_t = fit_temperature or calibrate
    has_val = "val" in index.splits
    if calibrate and not has_val:
        raise DatasetError(
            "--calibrate fits the temperature on a val split and the data has none "
            f"(splits present: {', '.join(index.splits) or 'none'})",
            path=data,
            fix="pass data with a val split (e.g. the run's split.csv) or drop --calibrate",
        )

    scored = _score(predictor, samples, batch_size, progress, f"scoring {split_name}")
    skipped = [*index.skipped, *scored.skipped]
    if not scored.samples:
        raise DatasetError(
            f"none of the {len(samples)} image(s) of split {split_name!r} could be decoded",
            path=data,
            fix="check the files (see `landscape data audit`)",
        )
    y = _targets(scored.samples, classes)
    predictions = predictor.predict_logits(scored.logits)
    # Probabilities exactly as Predictor reports them (bundle temperature included).
    probs = np.array([[p.probabilities[c] for c in classes] for p in predictions], dtype=np.float64)
    metrics = classification_metrics(y, probs, classes)
    # Calibration from the same logits in float64: float32 softmax saturates at exactly 1.0 for
    # confident images, which would put them in a bin of their own.
    probs64 = apply_temperature(scored.logits, predictor.temperature).numpy()
    ece = expected_calibration_error(probs64, y)
    bins = reliability_bins(probs64, y)

    temperature: float | None = None
    ece_after: float | None = None
    bins_after: list[dict[str, Any]] | None = None
    n_val: int | None = None
    notes = _notes(predictor, index, data, split_name, bundle)
    if fit_t and has_val:
        if split_name == "val":
            val = scored
            notes.append("the temperature is fitted on the split being evaluated (val)")
        else:
            val = _score(predictor, index.subset("val"), batch_size, progress, "scoring val")
        if len(val.samples):
            temperature = fit_temperature_on(val.logits, _targets(val.samples, classes))
            n_val = len(val.samples)
            scaled = apply_temperature(scored.logits, temperature).numpy()
            ece_after = expected_calibration_error(scaled, y)
            bins_after = reliability_bins(scaled, y)
    stored = False
    if calibrate and temperature is not None:
        update_bundle_meta(bundle, temperature=temperature)
        stored = True

    timing: dict[str, Any] | None = None
    if latency:
        encoded = [s.path.read_bytes() for s in scored.samples[:batch_size]]
        timing = measure_latency(
            predictor, encoded, runs=latency_runs, batch_size=batch_size, batches=latency_batches
        )
    facts = model_facts(predictor)
    unknown = predictor.unknown_threshold

    result: dict[str, Any] = {
        "model_id": predictor.model_id,
        "bundle": str(bundle),
        "data": str(data),
        "split": split_name,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "classes": classes,
        "n_images": len(scored.samples),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "macro_precision": metrics["macro_precision"],
        "macro_recall": metrics["macro_recall"],
        "weighted_precision": metrics["weighted_precision"],
        "weighted_recall": metrics["weighted_recall"],
        "weighted_f1": metrics["weighted_f1"],
        "top_k": metrics["top_k"],
        "per_class": metrics["per_class"],
        "confusion_matrix": metrics["confusion_matrix"],
        "confusion_matrix_normalized": metrics["confusion_matrix_normalized"],
        "most_confused": metrics["most_confused"],
        "ece": ece,
        "ece_bins": len(bins),
        "bundle_temperature": predictor.temperature,
        "temperature": temperature,
        "temperature_fit_images": n_val,
        "temperature_stored": stored,
        "ece_after_temperature": ece_after,
        "reliability": bins,
        "unknown_threshold": unknown,
        "n_unknown": sum(p.is_unknown for p in predictions) if unknown is not None else None,
        "latency": timing,
        "params": facts["params"],
        "bundle_bytes": facts["bundle_bytes"],
        "training_seconds": facts["training_seconds"],
        "skipped": [{"path": str(p), "reason": reason} for p, reason in skipped],
        "notes": notes,
    }
    rows = _loss_rows(scored.samples, probs, y, classes)
    files = write_report(
        out, result, rows, reliability=bins, reliability_after=bins_after, gallery=gallery
    )
    return {**result, "files": {name: str(path) for name, path in files.items()}}
