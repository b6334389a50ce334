"""Classification metrics of one evaluation: accuracy, top-k, P/R/F1, confusion, most confused.

Everything is computed by scikit-learn from integer labels and class probabilities; this module
only arranges the numbers into JSON-ready structures keyed by class name. Class indices are the
bundle's: a class the model knows but the evaluated data lacks keeps its row and column (support
0), so matrices from different datasets with the same bundle line up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "classification_metrics",
    "confusion_counts",
    "most_confused",
    "normalize_rows",
    "top_k_accuracy",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def confusion_counts(
    y_true: Sequence[int] | IntArray, y_pred: Sequence[int] | IntArray, n_classes: int
) -> IntArray:
    """``n_classes × n_classes`` counts; rows are the true class, columns the predicted one."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    return np.asarray(matrix, dtype=np.int64)


def normalize_rows(matrix: IntArray) -> FloatArray:
    """Each row divided by its sum (recall on the diagonal); an empty row stays all zeros."""
    sums = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    # A class absent from the data has no row to normalise: zeros, not NaN, keep JSON valid.
    return np.divide(matrix, sums, out=np.zeros(matrix.shape, dtype=np.float64), where=sums > 0)


def top_k_accuracy(y_true: Sequence[int] | IntArray, probs: FloatArray, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` most probable."""
    from sklearn.metrics import top_k_accuracy_score

    n_classes = probs.shape[1]
    if k >= n_classes:
        return 1.0
    return float(top_k_accuracy_score(y_true, probs, k=k, labels=list(range(n_classes))))


def most_confused(
    matrix: IntArray, classes: Sequence[str], *, min_count: int = 1, limit: int = 10
) -> list[dict[str, Any]]:
    """Off-diagonal cells with at least ``min_count`` images, largest first (fastai's verb).

    Each item is ``{"true": class, "predicted": class, "count": n, "fraction": n / row total}``.
    """
    pairs: list[dict[str, Any]] = []
    totals = matrix.sum(axis=1)
    for i, j in zip(*np.nonzero(matrix), strict=True):
        count = int(matrix[i, j])
        if i == j or count < min_count:
            continue
        pairs.append(
            {
                "true": classes[i],
                "predicted": classes[j],
                "count": count,
                "fraction": count / int(totals[i]),
            }
        )
    # Ties broken by names so the list is stable from run to run.
    pairs.sort(key=lambda p: (-p["count"], p["true"], p["predicted"]))
    return pairs[:limit]


def classification_metrics(
    y_true: Sequence[int] | IntArray,
    probs: FloatArray,
    classes: Sequence[str],
    *,
    top_k: Sequence[int] = (1, 3, 5),
) -> dict[str, Any]:
    """All label metrics of one evaluation from true indices and ``[N, C]`` probabilities.

    Macro and weighted averages are taken over the classes present in ``y_true``: a class the
    model knows but the data lacks would otherwise count as an F1 of 0 and hide real quality.
    Predictions *into* such a class still count as errors of the true class.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    truth = np.asarray(y_true, dtype=np.int64)
    if truth.ndim != 1 or probs.ndim != 2 or probs.shape[0] != truth.shape[0]:
        raise ValueError(f"shapes do not match: y_true {truth.shape}, probs {probs.shape}")
    n_classes = len(classes)
    if probs.shape[1] != n_classes:
        raise ValueError(f"probs has {probs.shape[1]} columns for {n_classes} classes")
    pred = probs.argmax(axis=1).astype(np.int64)
    every = list(range(n_classes))
    present = sorted(set(truth.tolist()))

    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=every, average=None, zero_division=0
    )
    averages: dict[str, float] = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            truth, pred, labels=present, average=average, zero_division=0
        )
        averages[f"{average}_precision"] = float(p)
        averages[f"{average}_recall"] = float(r)
        averages[f"{average}_f1"] = float(f)

    matrix = confusion_counts(truth, pred, n_classes)
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        **averages,
        "top_k": {f"top_{k}": top_k_accuracy(truth, probs, k) for k in top_k if k <= n_classes},
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalized": normalize_rows(matrix).round(6).tolist(),
        "most_confused": most_confused(matrix, classes),
    }
