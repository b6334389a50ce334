"""Tests of :mod:`landscape.evaluation.metrics` against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.evaluation.metrics import (
    classification_metrics,
    confusion_counts,
    most_confused,
    normalize_rows,
    top_k_accuracy,
)

CLASSES = ["coast", "forest", "glacier"]


def _one_hot(pred: list[int], n: int, p: float = 0.8) -> np.ndarray:
    """Probabilities with ``p`` on the predicted class and the rest spread evenly."""
    probs = np.full((len(pred), n), (1 - p) / (n - 1))
    probs[np.arange(len(pred)), pred] = p
    return probs


def test_hand_computed_example() -> None:
    # true:  0 0 0 0 1 1 1 2 2 2
    # pred:  0 0 0 1 1 1 2 2 2 0
    y = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    pred = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]
    m = classification_metrics(y, _one_hot(pred, 3), CLASSES)

    assert m["accuracy"] == pytest.approx(0.7)
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    coast, forest, glacier = (m["per_class"][c] for c in CLASSES)
    # coast: tp 3, fp 1 (a glacier), fn 1 → P 3/4, R 3/4
    assert coast == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4})
    # forest: tp 2, fp 1, fn 1 → P 2/3, R 2/3
    assert forest["precision"] == pytest.approx(2 / 3)
    assert forest["recall"] == pytest.approx(2 / 3)
    assert forest["support"] == 3
    assert glacier["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.75 + 2 / 3 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((4 * 0.75 + 3 * 2 / 3 + 3 * 2 / 3) / 10)
    assert m["macro_precision"] == pytest.approx((0.75 + 2 / 3 + 2 / 3) / 3)
    assert m["top_k"]["top_1"] == pytest.approx(0.7)
    # With 3 classes top-3 contains every class.
    assert m["top_k"]["top_3"] == 1.0
    assert "top_5" not in m["top_k"]
    assert m["confusion_matrix_normalized"][0] == pytest.approx([0.75, 0.25, 0.0])


def test_matches_torchmetrics_on_random_data() -> None:
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    rng = np.random.default_rng(0)
    n, c = 500, 6
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.0  # better than chance, far from perfect
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    m = classification_metrics(y, probs, [f"c{i}" for i in range(c)])

    preds, target = torch.from_numpy(probs), torch.from_numpy(y)
    assert m["accuracy"] == pytest.approx(
        float(multiclass_accuracy(preds, target, num_classes=c, average="micro"))
    )
    assert m["macro_f1"] == pytest.approx(
        float(multiclass_f1_score(preds, target, num_classes=c, average="macro")), abs=1e-6
    )
    assert m["top_k"]["top_3"] == pytest.approx(
        float(multiclass_accuracy(preds, target, num_classes=c, top_k=3, average="micro"))
    )
    assert np.asarray(m["confusion_matrix"]).sum() == n


def test_class_absent_from_data_keeps_its_row_and_is_not_averaged() -> None:
    classes = [*CLASSES, "desert"]
    y = [0, 0, 1, 1, 2, 2]
    pred = [0, 3, 1, 1, 2, 2]  # one coast predicted as desert, a class with no image
    m = classification_metrics(y, _one_hot(pred, 4), classes)

    desert = m["per_class"]["desert"]
    assert desert["support"] == 0
    assert desert["precision"] == 0.0  # its one prediction is wrong
    assert m["confusion_matrix"][3] == [0, 0, 0, 0]
    assert m["confusion_matrix_normalized"][3] == [0.0, 0.0, 0.0, 0.0]  # not NaN
    # Macro over the three present classes: coast F1 = 2/3 (P 1, R 1/2), others 1.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert m["accuracy"] == pytest.approx(5 / 6)


def test_most_confused_sorted_with_fractions() -> None:
    matrix = np.array([[5, 3, 0], [1, 4, 3], [0, 0, 9]])
    pairs = most_confused(matrix, CLASSES)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("coast", "forest", 3),
        ("forest", "glacier", 3),
        ("forest", "coast", 1),
    ]
    assert pairs[0]["fraction"] == pytest.approx(3 / 8)
    assert most_confused(matrix, CLASSES, min_count=2, limit=1) == pairs[:1]
    assert most_confused(np.diag([2, 2, 2]), CLASSES) == []


def test_confusion_and_normalisation() -> None:
    cm = confusion_counts([0, 1, 1], [1, 1, 1], 3)
    assert cm.tolist() == [[0, 1, 0], [0, 2, 0], [0, 0, 0]]
    norm = normalize_rows(cm)
    assert norm.tolist() == [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_top_k() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    y = [1, 0, 2]  # ranks: 2nd, 3rd, 2nd
    assert top_k_accuracy(y, probs, 1) == 0.0
    assert top_k_accuracy(y, probs, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(y, probs, 3) == 1.0


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="shapes"):
        classification_metrics([0, 1], np.ones((3, 3)) / 3, CLASSES)
    with pytest.raises(ValueError, match="columns"):
        classification_metrics([0, 1], np.ones((2, 2)) / 2, CLASSES)
