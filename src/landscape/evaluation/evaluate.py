"""``evaluate_bundle``: score a dataset split with a bundle and write the evaluation's files.

Scoring goes through :class:`landscape.inference.Predictor` (bundle preprocessing, the same
``logits`` → ``predict_logits`` path as ``landscape predict``), so every number in a report is
what a user of the bundle gets. Nothing here imports training code.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
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
from .explain import EMBED_LIMIT, EXPLAIN_DEFAULT, ExplainItem, write_explanations
from .latency import measure_latency, model_facts
from .metrics import classification_metrics
from .openset import (
    DEFAULT_COVERAGE,
    ood_image_paths,
    open_set_metrics,
    synthetic_ood_images,
)
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


#: ``--ood noise`` scores this many synthetic images unless ``noise:N`` says otherwise.
NOISE_IMAGES = 60


@dataclass
class _Scored:
    """Images that decoded, their raw logits, and the ones that did not."""

    samples: list[Sample]
    logits: torch.Tensor
    skipped: list[tuple[Path, str]]
    #: Pooled backbone features (the head's input), when asked for.
    features: torch.Tensor | None = None


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
    *,
    features: bool = False,
) -> _Scored:
    """Decode + preprocess in a thread pool one batch ahead while the model runs on the last.

    ``features``: also keep the pooled backbone features, from the very forward pass that
    gives the logits (no second pass over the images).
    """
    kept: list[Sample] = []
    skipped: list[tuple[Path, str]] = []
    chunks: list[torch.Tensor] = []
    pooled: list[torch.Tensor] = []

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
                logits, pooled_batch = predictor.logits_and_features(torch.stack(tensors))
                chunks.append(logits)
                if features:
                    pooled.append(pooled_batch)
            advance(len(batch))
    n_classes = len(predictor.classes)
    logits = torch.cat(chunks) if chunks else torch.zeros((0, n_classes))
    feats = torch.cat(pooled) if features and pooled else None
    return _Scored(kept, logits, skipped, feats)


def _resolve_ood(ood: str | Path) -> int | list[Path]:
    """``--ood`` checked before any scoring: a count of noise images, or the folder's images."""
    text = str(ood)
    if text == "noise" or text.startswith("noise:"):
        if ":" not in text:
            return NOISE_IMAGES
        value = text.split(":", 1)[1]
        if not value.isdigit() or int(value) < 1:
            raise DatasetError(f"bad --ood value {text!r}", fix="use noise or noise:N with N >= 1")
        return int(value)
    folder = Path(ood)
    if not folder.is_dir():
        raise DatasetError(
            "--ood must be a folder of images or 'noise'",
            path=folder,
            fix="pass a folder of images that belong to none of the classes, or noise",
        )
    paths = ood_image_paths(folder)
    if not paths:
        raise DatasetError("no image file in the --ood folder", path=folder)
    return paths


def _score_ood(
    predictor: Predictor,
    ood: str | Path,
    wanted: int | list[Path],
    batch_size: int,
    progress: ProgressFactory,
) -> tuple[str, _Scored]:
    """Score the out-of-distribution images of ``--ood`` (see :func:`_resolve_ood`)."""
    if isinstance(wanted, int):
        images = synthetic_ood_images(wanted)
        chunks = []
        with progress("scoring ood (noise)", wanted) as advance:
            for i in range(0, wanted, batch_size):
                batch = torch.stack([predictor.preprocess(im) for im in images[i : i + batch_size]])
                chunks.append(predictor.logits(batch))
                advance(len(batch))
        return "synthetic noise, flat and texture images", _Scored([], torch.cat(chunks), [])
    samples = [Sample(path=p, label="") for p in wanted]
    scored = _score(predictor, samples, batch_size, progress, "scoring ood")
    if not scored.samples:
        raise DatasetError(
            f"none of the {len(wanted)} image(s) of the --ood folder could be decoded",
            path=Path(ood),
        )
    return str(ood), scored


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
    backend: str = "torch",
    batch_size: int = 32,
    latency_runs: int = 30,
    latency_batches: int = 3,
    gallery: bool = True,
    explain: bool = True,
    max_explain: int = EXPLAIN_DEFAULT,
    ood: str | Path | None = None,
    coverage: float = DEFAULT_COVERAGE,
    set_threshold: bool = False,
    open_set: bool = True,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Evaluate ``bundle`` on ``split`` of ``data``; write metrics, tables, figures and HTML.

    - ``split``: ``None`` (test when the data has splits, else every image), a split name, or
      ``"all"``.
    - ``fit_temperature``: fit ``T`` on the data's val split (when it has one) and report the
      ECE after scaling; ``calibrate`` also stores ``T`` in the bundle (needs a val split).
    - ``latency``: time the model alone and end to end (see :mod:`.latency`).
    - ``explain``: Grad-CAM of up to ``max_explain`` correct and as many wrong predictions,
      first-layer activations and a t-SNE of the embeddings (see :mod:`.explain`).
    - ``open_set``: the MSP threshold keeping ``coverage`` of the val images (of the evaluated
      split when there is no val split) and the accuracy/coverage curve; ``ood`` (a folder of
      images of no class, or ``"noise"`` / ``"noise:N"``) adds AUROC and FPR@95%TPR;
      ``set_threshold`` stores the threshold in the bundle (needs a val split). ``ood`` or
      ``set_threshold`` turn it on whatever ``open_set`` says; off, ``open_set`` is ``null`` in
      ``metrics.json`` and the val split is only scored to fit a temperature.

    Returns the content of ``metrics.json`` plus ``"files"`` (name → path of each output).
    Raises :class:`DatasetError` for a missing split, classes the bundle lacks, or when no image
    could be decoded.
    """
    bundle, data, out = Path(bundle), Path(data), Path(out)
    progress = progress or _no_progress
    predictor = Predictor.from_bundle(bundle, backend=backend, device=device)
    classes = list(predictor.classes)
    # One class is enough to evaluate (a subset of the bundle's classes is fine).
    index = load_dataset(data, min_classes=1)
    _check_classes(index, classes, data)
    split_name, samples = select_split(index, split)
    fit_t = fit_temperature or calibrate
    has_val = "val" in index.splits
    for flag, wanted, what in (
        ("--calibrate", calibrate, "fits the temperature"),
        ("--set-threshold", set_threshold, "chooses the unknown threshold"),
    ):
        if wanted and not has_val:
            raise DatasetError(
                f"{flag} {what} on a val split and the data has none "
                f"(splits present: {', '.join(index.splits) or 'none'})",
                path=data,
                fix=f"pass data with a val split (e.g. the run's split.csv) or drop {flag}",
            )
    if not 0.0 < coverage <= 1.0:
        raise DatasetError(f"coverage must be in (0, 1], got {coverage}")
    ood_wanted = _resolve_ood(ood) if ood is not None else None
    open_set = open_set or set_threshold or ood is not None

    scored = _score(
        predictor, samples, batch_size, progress, f"scoring {split_name}", features=explain
    )
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
    val: _Scored | None = None
    if has_val and (fit_t or open_set):
        # The val split serves the temperature and the open-set threshold alike.
        if split_name == "val":
            val = scored
        else:
            val = _score(predictor, index.subset("val"), batch_size, progress, "scoring val")
        if not len(val.samples):
            val = None
    if fit_t and val is not None:
        if val is scored:
            notes.append("the temperature is fitted on the split being evaluated (val)")
        temperature = fit_temperature_on(val.logits, _targets(val.samples, classes))
        n_val = len(val.samples)
        scaled = apply_temperature(scored.logits, temperature).numpy()
        ece_after = expected_calibration_error(scaled, y)
        bins_after = reliability_bins(scaled, y)
    stored = False
    if calibrate and temperature is not None:
        update_bundle_meta(bundle, temperature=temperature)
        stored = True

    open_set_result: dict[str, Any] | None = None
    open_scores: dict[str, np.ndarray[Any, Any]] | None = None
    ood_paths: list[Path] | None = None
    if open_set:
        # Scored with the temperature predictions will use from now on.
        open_t = temperature if stored and temperature is not None else predictor.temperature
        ood_source: str | None = None
        ood_scored: _Scored | None = None
        if ood is not None and ood_wanted is not None:
            ood_source, ood_scored = _score_ood(predictor, ood, ood_wanted, batch_size, progress)
            ood_paths = [s.path for s in ood_scored.samples] or None
        open_set_result, open_scores = open_set_metrics(
            scored.logits,
            y,
            temperature=open_t,
            threshold_logits=(val if val is not None else scored).logits,
            threshold_split="val" if val is not None else split_name,
            coverage=coverage,
            ood_logits=ood_scored.logits if ood_scored is not None else None,
            ood_source=ood_source,
        )
        if open_set_result["ood"] is not None and ood_scored is not None:
            # OOD files that did not decode are listed here, apart from the evaluated split's.
            open_set_result["ood"]["skipped"] = [
                {"path": str(p), "reason": reason} for p, reason in ood_scored.skipped
            ]
        open_set_result["note"] = (
            None
            if val is not None
            else "no val split: the threshold is chosen on the evaluated split itself, so its "
            "coverage there is exact by construction, not a held-out estimate"
        )
        open_set_result["bundle_threshold"] = predictor.unknown_threshold
        open_set_result["threshold_stored"] = False
        if set_threshold and val is not None:
            update_bundle_meta(
                bundle, unknown_threshold=open_set_result["threshold"], unknown_score="msp"
            )
            open_set_result["threshold_stored"] = True

    timing: dict[str, Any] | None = None
    if latency:
        encoded = [s.path.read_bytes() for s in scored.samples[:batch_size]]
        timing = measure_latency(
            predictor, encoded, runs=latency_runs, batch_size=batch_size, batches=latency_batches
        )
    facts = model_facts(predictor)
    unknown = predictor.unknown_threshold
    rows = _loss_rows(scored.samples, probs, y, classes)

    explain_info: dict[str, Any] | None = None
    explain_files: dict[str, Path] = {}
    if explain:
        started = time.perf_counter()
        items = [
            ExplainItem(
                path=sample.path,
                true=int(t),
                predicted=int(row.argmax()),
                confidence=float(row.max()),
                p_true=float(row[t]),
            )
            for sample, row, t in zip(scored.samples, probs, y, strict=True)
        ]
        feats = scored.features.numpy() if scored.features is not None else None
        explain_info, explain_files = write_explanations(
            predictor, items, feats, out, limit=max_explain, embed_limit=EMBED_LIMIT
        )
        explain_info["seconds"] = round(time.perf_counter() - started, 2)

    result: dict[str, Any] = {
        "model_id": predictor.model_id,
        "backend": predictor.backend_name,
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
        "open_set": open_set_result,
        "explain": explain_info,
        "latency": timing,
        "params": facts["params"],
        "bundle_bytes": facts["bundle_bytes"],
        "training_seconds": facts["training_seconds"],
        "skipped": [{"path": str(p), "reason": reason} for p, reason in skipped],
        "notes": notes,
    }
    files = write_report(
        out,
        result,
        rows,
        reliability=bins,
        reliability_after=bins_after,
        gallery=gallery,
        extra=explain_files,
        open_set_scores=open_scores,
        id_paths=[s.path for s in scored.samples],
        ood_paths=ood_paths,
    )
    return {**result, "files": {name: str(path) for name, path in files.items()}}
