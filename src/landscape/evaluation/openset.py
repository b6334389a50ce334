"""Open set: scoring how "in-distribution" an image looks, an "unknown" threshold, and its test.

Two scores, both *higher = more like the training classes*:

- ``msp``: the maximum softmax probability of ``logits / T`` (Hendrycks & Gimpel, 2017) — what
  :class:`landscape.inference.Predictor` reports as ``confidence`` and compares with the bundle's
  ``unknown_threshold``, so it is the score a threshold is stored for.
- ``energy``: the negative free energy ``T · logsumexp(logits / T)`` (Liu et al., 2020), i.e.
  ``-E(x)`` with ``E(x) = -T · logsumexp(logits / T)``; reported beside MSP for comparison.

An image is "unknown" when its score is below the threshold. The threshold is chosen on
in-distribution validation images for a target *coverage* (the fraction of them kept). Against
out-of-distribution (OOD) images the scores are judged by AUROC (ID = positive class) and the
false-positive rate at 95 % true-positive rate; on the ID test images the accuracy/coverage curve
(selective classification) shows what rejecting the least confident predictions buys.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

__all__ = [
    "DEFAULT_COVERAGE",
    "SCORES",
    "area_under_risk_coverage",
    "coverage_curve",
    "energy_score",
    "fpr_at_tpr",
    "msp_score",
    "ood_auroc",
    "ood_image_paths",
    "open_set_metrics",
    "score",
    "synthetic_ood_images",
    "threshold_for_coverage",
]

#: Keep 95 % of in-distribution validation images by default.
DEFAULT_COVERAGE = 0.95
#: The open-set scores, the first is the one stored in bundles.
SCORES: tuple[str, ...] = ("msp", "energy")

ScoreName = Literal["msp", "energy"]
FloatArray = npt.NDArray[np.float64]


def msp_score(logits: torch.Tensor, temperature: float = 1.0) -> FloatArray:
    """Maximum softmax probability of ``logits / temperature`` per row (float64)."""
    probs = torch.softmax(torch.as_tensor(logits).double() / temperature, dim=1)
    return probs.max(dim=1).values.numpy()


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> FloatArray:
    """Negative energy ``T · logsumexp(logits / T)`` per row: higher = more in-distribution."""
    x = torch.as_tensor(logits).double()
    return (temperature * torch.logsumexp(x / temperature, dim=1)).numpy()


def score(logits: torch.Tensor, kind: str, temperature: float = 1.0) -> FloatArray:
    """The open-set score ``kind`` (``"msp"`` or ``"energy"``) of each row of ``logits``."""
    if kind == "msp":
        return msp_score(logits, temperature)
    if kind == "energy":
        return energy_score(logits, temperature)
    raise ValueError(f"unknown open-set score {kind!r}; use one of {', '.join(SCORES)}")


def threshold_for_coverage(
    scores: Sequence[float] | npt.NDArray[np.floating[Any]], coverage: float = DEFAULT_COVERAGE
) -> float:
    """The largest threshold that keeps at least ``coverage`` of ``scores`` (``score >= t``).

    With ``n`` scores sorted ascending, ``floor((1 - coverage) · n)`` of them may be rejected, so
    the threshold is the score at that position: everything strictly below it is "unknown".
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    values = np.sort(np.asarray(scores, dtype=np.float64))
    if values.size == 0:
        raise ValueError("no score to choose a threshold from")
    rejected = int(np.floor((1.0 - coverage) * values.size + 1e-9))
    return float(values[min(rejected, values.size - 1)])


def ood_auroc(
    id_scores: npt.NDArray[np.floating[Any]], ood_scores: npt.NDArray[np.floating[Any]]
) -> float:
    """Area under the ROC curve separating ID (positive) from OOD by the score (0.5 = chance)."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    return float(roc_auc_score(y, np.r_[id_scores, ood_scores]))


def fpr_at_tpr(
    id_scores: npt.NDArray[np.floating[Any]],
    ood_scores: npt.NDArray[np.floating[Any]],
    tpr: float = 0.95,
) -> float:
    """Fraction of OOD images accepted when the threshold keeps ``tpr`` of the ID images."""
    threshold = threshold_for_coverage(id_scores, tpr)
    return float(np.mean(np.asarray(ood_scores) >= threshold))


def coverage_curve(
    confidence: npt.NDArray[np.floating[Any]],
    correct: npt.NDArray[np.bool_] | Sequence[bool],
    *,
    max_points: int = 101,
) -> list[dict[str, float]]:
    """Selective classification: accuracy of the kept predictions against the fraction kept.

    The threshold sweeps the distinct confidences from the highest down, so coverage rises
    strictly from the first point to 1.0; images with equal confidence are kept or rejected
    together. Each point is ``{"threshold", "coverage", "accuracy", "risk"}``; at most
    ``max_points`` evenly spread points (the first and last always) are returned.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    n = conf.size
    if n == 0:
        return []
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    hits = np.cumsum(ok)
    # The last index of each run of equal confidences: the points a threshold can reach.
    ends = np.r_[np.nonzero(np.diff(conf))[0], n - 1]
    if ends.size > max_points:
        pick = np.unique(np.round(np.linspace(0, ends.size - 1, max_points)).astype(int))
        ends = ends[pick]
    points = []
    for end in ends:
        kept = end + 1
        accuracy = float(hits[end] / kept)
        points.append(
            {
                "threshold": float(conf[end]),
                "coverage": kept / n,
                "accuracy": accuracy,
                "risk": 1.0 - accuracy,
            }
        )
    return points


def area_under_risk_coverage(points: Sequence[dict[str, float]]) -> float | None:
    """Area under the risk/coverage curve (AURC, lower is better) by the trapezoid rule."""
    if len(points) < 2:
        return None
    cov = np.array([p["coverage"] for p in points])
    risk = np.array([p["risk"] for p in points])
    return float(np.sum((cov[1:] - cov[:-1]) * (risk[1:] + risk[:-1]) / 2))


def synthetic_ood_images(n: int = 60, size: int = 256, seed: int = 0) -> list[Image.Image]:
    """``n`` images that belong to no landscape class: noise, flat colours and textures.

    A cycle of six kinds — Gaussian RGB noise, salt-and-pepper, a flat colour, a stripe pattern,
    a checkerboard and blurred blob noise — each with random parameters from ``seed``.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images: list[Image.Image] = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            array = rng.normal(rng.uniform(60, 190), rng.uniform(20, 70), (size, size, 3))
        elif kind == 1:
            array = (rng.random((size, size, 1)) > 0.5) * 255.0 * np.ones(3)
        elif kind == 2:
            array = np.ones((size, size, 3)) * rng.uniform(0, 255, 3)
        elif kind == 3:
            angle = rng.uniform(0, np.pi)
            period = rng.uniform(6, 40)
            wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            array = a + (b - a) * ((wave[..., None] + 1) / 2)
        elif kind == 4:
            cell = int(rng.integers(8, 48))
            board = ((xx // cell + yy // cell) % 2)[..., None]
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            array = a + (b - a) * board
        else:
            small = rng.random((8, 8, 3)) * 255
            blob = Image.fromarray(small.astype(np.uint8)).resize(
                (size, size), Image.Resampling.BICUBIC
            )
            array = np.asarray(blob, dtype=np.float64)
        images.append(Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB"))
    return images


def ood_image_paths(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively, sorted): the OOD set of ``--ood DIR``."""
    from landscape.data.io import is_image_path

    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_path(p))


def open_set_metrics(
    test_logits: torch.Tensor,
    test_targets: npt.NDArray[np.integer[Any]],
    *,
    temperature: float,
    threshold_logits: torch.Tensor,
    threshold_split: str,
    coverage: float = DEFAULT_COVERAGE,
    ood_logits: torch.Tensor | None = None,
    ood_source: str | None = None,
) -> tuple[dict[str, Any], dict[str, FloatArray]]:
    """The ``open_set`` entry of ``metrics.json`` and the raw scores behind it.

    ``threshold_logits`` are the in-distribution images the thresholds are chosen on (the val
    split when there is one); ``test_logits`` / ``test_targets`` the evaluated split, which gives
    the accuracy/coverage curve and the ID side of the AUROC against ``ood_logits``. Scores use
    ``temperature`` (the one predictions will use). The raw scores (``id_msp``, ``id_energy``
    and, with OOD images, ``ood_msp``, ``ood_energy``) are returned apart, for the report's
    histogram and CSV, so ``metrics.json`` stays small whatever the number of images.
    """
    thresholds = {
        kind: threshold_for_coverage(score(threshold_logits, kind, temperature), coverage)
        for kind in SCORES
    }
    id_scores = {kind: score(test_logits, kind, temperature) for kind in SCORES}
    msp = id_scores["msp"]
    correct = test_logits.argmax(dim=1).numpy() == np.asarray(test_targets)
    curve = coverage_curve(msp, correct)
    kept = msp >= thresholds["msp"]
    result: dict[str, Any] = {
        "score": "msp",
        "temperature": temperature,
        "target_coverage": coverage,
        "threshold": thresholds["msp"],
        "threshold_energy": thresholds["energy"],
        "threshold_split": threshold_split,
        "threshold_images": int(threshold_logits.shape[0]),
        "test": {
            "images": int(kept.size),
            "coverage": float(kept.mean()),
            "accuracy_all": float(correct.mean()),
            "accuracy_kept": float(correct[kept].mean()) if kept.any() else None,
            "aurc": area_under_risk_coverage(curve),
        },
        "coverage_curve": curve,
        "ood": None,
    }
    raw = {f"id_{k}": v for k, v in id_scores.items()}
    if ood_logits is not None and ood_logits.shape[0] > 0:
        ood_scores = {kind: score(ood_logits, kind, temperature) for kind in SCORES}
        result["ood"] = {
            "source": ood_source,
            "images": int(ood_logits.shape[0]),
            "auroc": {k: ood_auroc(id_scores[k], ood_scores[k]) for k in SCORES},
            "fpr_at_95_tpr": {k: fpr_at_tpr(id_scores[k], ood_scores[k]) for k in SCORES},
            # What the chosen thresholds do to these OOD images (fraction flagged unknown).
            "rejected_at_threshold": {
                k: float(np.mean(ood_scores[k] < thresholds[k])) for k in SCORES
            },
        }
        raw.update({f"ood_{k}": v for k, v in ood_scores.items()})
    return result, raw
