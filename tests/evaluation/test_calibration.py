"""Tests of :mod:`landscape.evaluation.calibration`: ECE, reliability bins, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.evaluation.calibration import (
    ECE_BINS,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def _calibrated_logits(
    n: int = 4000, c: int = 5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits with labels drawn from their own softmax: a perfectly calibrated model (T = 1)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=gen) * 2.0
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=gen).squeeze(1)
    return logits, labels


def test_ece_by_hand() -> None:
    # Ten images at confidence 0.9 (one bin), 6 right: |0.6 - 0.9| = 0.3.
    probs = np.tile([0.9, 0.05, 0.05], (10, 1))
    y = [0] * 6 + [1] * 4
    assert expected_calibration_error(probs, y) == pytest.approx(0.3)
    # Two bins: 4 images at 0.9 all right (gap 0.1), 4 at 0.5 half right (gap 0) → 0.05.
    probs = np.array([[0.9, 0.1]] * 4 + [[0.5 + 1e-3, 0.5 - 1e-3]] * 4)
    y = [0, 0, 0, 0, 0, 1, 0, 1]
    assert expected_calibration_error(probs, y) == pytest.approx(0.05, abs=1e-3)


def test_reliability_bins_agree_with_ece() -> None:
    logits, y = _calibrated_logits()
    probs = apply_temperature(logits * 2.5, 1.0).numpy()  # overconfident
    bins = reliability_bins(probs, y)
    assert len(bins) == ECE_BINS
    assert sum(b["count"] for b in bins) == len(y)
    assert bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0
    n = len(y)
    from_bins = sum(
        b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]
    )
    assert from_bins == pytest.approx(expected_calibration_error(probs, y), abs=1e-6)
    # Top-label confidence of 5 classes is at least 0.2: the lowest bins stay empty.
    assert bins[0]["count"] == 0 and bins[0]["accuracy"] is None


@pytest.mark.parametrize("scale", [0.4, 1.0, 3.0])
def test_fit_temperature_recovers_the_scale(scale: float) -> None:
    logits, y = _calibrated_logits()
    temperature = fit_temperature(logits * scale, y)
    assert temperature == pytest.approx(scale, rel=0.15)
    before = expected_calibration_error(apply_temperature(logits * scale, 1.0), y)
    after = expected_calibration_error(apply_temperature(logits * scale, temperature), y)
    # NLL and ECE have different optima: at scale 1 both are already near 0 and may trade places.
    if scale != 1.0:
        assert after < before
    assert after < 0.03


def test_fit_temperature_accepts_inference_tensors_and_keeps_labels() -> None:
    logits, y = _calibrated_logits(n=500)
    with torch.inference_mode():
        frozen = logits * 4.0  # an inference tensor, as Predictor.logits returns
    temperature = fit_temperature(frozen, y.numpy())
    assert temperature > 1.5
    scaled = apply_temperature(frozen, temperature)
    assert torch.equal(scaled.argmax(1), frozen.argmax(1))


def test_fit_temperature_bounds_and_errors() -> None:
    # Separable, every label right: NLL keeps falling as T → 0; the fit stays in range.
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]] * 10)
    y = torch.tensor([0, 1] * 10)
    assert 0.05 <= fit_temperature(logits, y) < 1.0
    with pytest.raises(ValueError):
        fit_temperature(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        expected_calibration_error(np.zeros((0, 3)), [])
