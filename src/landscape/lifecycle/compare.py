"""Score the base and the candidate on the same held-out reviewed files.

Both bundles run through the same :class:`~landscape.inference.predictor.Predictor` on the same
files; the base's probabilities are laid out in the candidate's class order (a class the base
does not know scores 0), so both are measured against one truth with one metric code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landscape.evaluation.metrics import classification_metrics
from landscape.inference.predictor import Predictor

from .dataset import HeldOut

__all__ = ["compare_models", "score_bundle"]


def score_bundle(
    bundle: Path, paths: Sequence[Path], classes: Sequence[str], *, batch_size: int = 32
) -> np.ndarray:
    """``[N, len(classes)]`` probabilities of ``bundle`` for ``paths`` in ``classes`` order."""
    predictor = Predictor.from_bundle(bundle)
    out = np.zeros((len(paths), len(classes)), dtype=np.float64)
    column = {name: i for i, name in enumerate(classes)}
    for row, prediction in enumerate(predictor.predict(list(paths), batch_size=batch_size)):
        for name, p in prediction.probabilities.items():
            if name in column:
                out[row, column[name]] = p
    return out


def _summary(model_id: str, metrics: dict[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "per_class_f1": {name: metrics["per_class"][name]["f1"] for name in classes},
        "confusion_matrix": metrics["confusion_matrix"],
    }


def compare_models(
    held_out: Sequence[HeldOut],
    classes: Sequence[str],
    base: tuple[str, Path],
    candidate: tuple[str, Path],
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1 and confusion of both models on ``held_out``, and the
    files whose prediction changes (with the truth, so a change reads as fixed or broken)."""
    truth = np.array([list(classes).index(h.label) for h in held_out], dtype=np.int64)
    paths = [h.path for h in held_out]
    probs = {
        which: score_bundle(path, paths, classes)
        for which, (_, path) in (("base", base), ("candidate", candidate))
    }
    metrics = {which: classification_metrics(truth, p, classes) for which, p in probs.items()}
    base_pred = probs["base"].argmax(axis=1)
    cand_pred = probs["candidate"].argmax(axis=1)
    changed = [
        {
            "file_id": h.file_id,
            "path": str(h.path),
            "truth": h.label,
            "base": classes[int(b)],
            "candidate": classes[int(c)],
            "fixed": int(c) == t,
        }
        for h, b, c, t in zip(held_out, base_pred, cand_pred, truth.tolist(), strict=True)
        if b != c
    ]
    return {
        "held_out": len(held_out),
        "classes": list(classes),
        "support": {name: int((truth == i).sum()) for i, name in enumerate(classes)},
        "base": _summary(base[0], metrics["base"], classes),
        "candidate": _summary(candidate[0], metrics["candidate"], classes),
        "changed": changed,
    }
