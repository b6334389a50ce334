"""Calibration: expected calibration error, reliability-diagram data and temperature scaling.

ECE follows Guo et al. (2017): 15 equal-width confidence bins, the sample-weighted mean of
``|accuracy - confidence|`` per bin (torchmetrics' ``l1`` norm). Temperature scaling divides the
logits by one scalar ``T`` fitted on held-out (validation) logits by minimising the negative
log-likelihood; it changes confidences, never the predicted label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "ECE_BINS",
    "apply_temperature",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_bins",
]

ECE_BINS = 15
# A fitted T outside this range means the logits are degenerate (e.g. one class, all correct);
# clamping keeps the stored bundle usable instead of dividing logits by 1e-9 or 1e9.
_T_MIN, _T_MAX = 0.05, 100.0


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax probabilities of ``logits / temperature`` (float64 for stable sums)."""
    return torch.softmax(logits.double() / temperature, dim=1)


def expected_calibration_error(
    probs: npt.NDArray[np.floating[Any]] | torch.Tensor,
    y_true: Sequence[int] | npt.NDArray[np.integer[Any]] | torch.Tensor,
    *,
    n_bins: int = ECE_BINS,
) -> float:
    """Top-label ECE of ``[N, C]`` probabilities against true class indices (0 = calibrated)."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    # float64: float32 softmax saturates to exactly 1.0 for confident models, which torchmetrics
    # then bins apart from the [14/15, 1) bin the reliability diagram shows.
    p = torch.as_tensor(probs).detach().to(torch.float64)
    t = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    if p.shape[0] == 0:
        raise ValueError("no sample to compute the calibration error of")
    value = multiclass_calibration_error(p, t, num_classes=p.shape[1], n_bins=n_bins, norm="l1")
    return float(value)


def reliability_bins(
    probs: npt.NDArray[np.floating[Any]] | torch.Tensor,
    y_true: Sequence[int] | npt.NDArray[np.integer[Any]] | torch.Tensor,
    *,
    n_bins: int = ECE_BINS,
) -> list[dict[str, Any]]:
    """Per-bin data of a reliability diagram (the same bins as :func:`expected_calibration_error`).

    Each bin is ``{"lower", "upper", "count", "confidence", "accuracy"}``; the mean confidence and
    accuracy are ``None`` for an empty bin so a plot can leave a gap instead of drawing a zero.
    """
    p = np.asarray(torch.as_tensor(probs, dtype=torch.float64))
    truth = np.asarray(y_true).astype(np.int64)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == truth).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are [lower, upper) like torchmetrics'; a confidence of exactly 1.0 joins the last bin
    # (torchmetrics gives it a bin of its own, which only matters for float32-saturated softmax).
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    bins: list[dict[str, Any]] = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "confidence": float(confidence[mask].mean()) if count else None,
                "accuracy": float(correct[mask].mean()) if count else None,
            }
        )
    return bins


def fit_temperature(
    logits: torch.Tensor,
    y_true: Sequence[int] | npt.NDArray[np.integer[Any]] | torch.Tensor,
    *,
    max_iter: int = 100,
) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (LBFGS on ``log T``).

    Optimising ``log T`` keeps ``T`` positive without a constraint; the start ``T = 1`` is the
    uncalibrated model.
    """
    t = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    # Logits scored under inference_mode are "inference tensors" that autograd refuses to save;
    # a clone made with inference mode off is an ordinary tensor.
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.as_tensor(logits).detach().clone().double()
        if x.ndim != 2 or x.shape[0] != t.shape[0] or x.shape[0] == 0:
            raise ValueError(
                f"need [N, C] logits and N labels, got {tuple(x.shape)} and {tuple(t.shape)}"
            )
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe"
        )
        nll = torch.nn.CrossEntropyLoss()

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = nll(x / log_t.exp(), t.clone())
            loss.backward()
            return loss

        optimizer.step(closure)
    value = float(log_t.detach().exp())
    if not np.isfinite(value):
        return 1.0
    return float(min(max(value, _T_MIN), _T_MAX))
