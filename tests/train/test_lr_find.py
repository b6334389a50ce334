"""Learning-rate range test: the curve, the suggestion, the files, the command."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from landscape.config import OptimConfig, load_train_config
from landscape.errors import ConfigError
from landscape.train.lr_find import lr_find, range_test, suggest_lrs
from landscape.train.optim import build_optimizer

# Small models on a shared 2-core machine: one torch thread avoids oversubscription.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """4 overlapping Gaussian classes in 16-D: learnable, but a too-high rate blows up."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 16, generator=g)
    y = torch.randint(0, 4, (240,), generator=g)
    return centers[y] + 1.5 * torch.randn(240, 16, generator=g), y


def _batches(x: torch.Tensor, y: torch.Tensor, size: int = 16) -> Iterator[Any]:
    g = torch.Generator().manual_seed(1)
    while True:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - size + 1, size):
            yield x[perm[i : i + size]], y[perm[i : i + size]]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def _train_loss(lr: float, x: torch.Tensor, y: torch.Tensor, steps: int = 60) -> float:
    model = _mlp()
    opt = build_optimizer(model, OptimConfig(lr=lr))
    batches = _batches(x, y)
    for _ in range(steps):
        xb, yb = next(batches)
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(x), y))


def test_range_test_records_a_smoothed_curve_and_a_sane_suggestion() -> None:
    x, y = _blobs()
    model = _mlp()
    opt = build_optimizer(model, OptimConfig())
    lrs, losses, smoothed, diverged = range_test(
        model, opt, _batches(x, y), nn.functional.cross_entropy, start=1e-7, end=10, steps=100
    )
    assert diverged and 10 < len(lrs) < 100  # stopped once the loss passed 4x its best
    assert lrs[0] == pytest.approx(1e-7)
    ratios = np.diff(np.log10(lrs))
    np.testing.assert_allclose(ratios, 8 / 99)  # exponential ramp over the requested range
    # Bias-corrected exponential moving average, beta 0.98.
    avg, expect = 0.0, []
    for i, value in enumerate(losses):
        avg = 0.98 * avg + 0.02 * value
        expect.append(avg / (1 - 0.98 ** (i + 1)))
    np.testing.assert_allclose(smoothed, expect, rtol=1e-9)
    assert smoothed[-1] > 4 * min(smoothed)

    found = suggest_lrs(lrs, smoothed)
    assert set(found) == {"steep", "valley", "minimum"}
    for lr in found.values():
        assert 1e-7 <= lr <= lrs[-1]
    assert 1e-4 <= found["steep"] <= 1.0
    # Sane: a short training run at the suggestion learns far more than at a tiny rate, and
    # the rate where the test diverged does not learn at all.
    at_suggestion = _train_loss(found["steep"], x, y)
    assert at_suggestion < 0.5 * _train_loss(1e-6, x, y)
    assert at_suggestion < _train_loss(lrs[-1], x, y)


def test_suggestions_on_a_known_curve() -> None:
    lrs = list(np.logspace(-7, 1, 100))
    log_lr = np.log10(lrs)
    # A loss that falls fastest at 1e-3, bottoms out near 1e-1 and then explodes.
    loss = 2.0 - 1.5 / (1 + np.exp(-4 * (log_lr + 3))) + np.where(log_lr > -1, (log_lr + 1) ** 2, 0)
    found = suggest_lrs(lrs, list(loss))
    assert found["steep"] == pytest.approx(1e-3, rel=0.25)
    assert 1e-5 < found["valley"] < 1e-1
    assert found["minimum"] == pytest.approx(lrs[int(np.argmin(loss))] / 10)


def test_a_bad_range_is_a_config_error() -> None:
    model = _mlp()
    opt = build_optimizer(model, OptimConfig())
    x, y = _blobs()
    with pytest.raises(ConfigError, match="0 < start < end"):
        range_test(model, opt, _batches(x, y), nn.functional.cross_entropy, start=1, end=1e-3)
    with pytest.raises(ConfigError, match="too few points"):
        suggest_lrs([1e-3, 1e-2], [1.0, math.inf])


def test_full_network_run_changes_nothing_on_disk_but_out(
    synth_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in synth_small.rglob("*")}
    cfg = load_train_config(
        None,
        {
            "data": str(synth_small),
            "backbone": "tiny_cnn",
            "weights": "none",
            "policy": "all",  # the backbone trains: no feature cache, images every step
            "batch_size": 8,
            "progress": False,
            "num_workers": 0,
        },
    )
    result = lr_find(cfg, out=tmp_path / "lr", start=1e-5, end=1.0, steps=8)
    assert not result.cached
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 8
    assert 1e-5 <= result.suggestion <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr"]  # no runs/latest, nothing else
    assert {"lr_find.csv", "lr_find.png"} <= {p.name for p in (tmp_path / "lr").iterdir()}
    assert {p: p.stat().st_mtime_ns for p in synth_small.rglob("*")} == before


def test_cli_writes_plot_and_csv_and_prints_json(
    run_cli: Callable[..., Any], synth_small: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lr"
    res = run_cli(
        "lr-find", "--data", synth_small, "--backbone", "tiny_cnn", "--weights", "none",
        "--policy", "frozen", "--steps", "40", "--start", "1e-6", "--end", "10",
        "--workers", "0", "--out", out, "--json",
    )  # fmt: skip
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["cached"] is True  # frozen backbone, deterministic transform
    assert 1e-6 <= summary["suggestion"] <= 10
    assert summary["suggestion"] == summary["suggestions"]["steep"]
    png = Path(summary["files"]["png"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(summary["files"]["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["steps_run"] > 5
    assert list(rows[0]) == ["step", "lr", "loss", "smoothed_loss"]
    assert float(rows[0]["lr"]) == pytest.approx(1e-6)

    res = run_cli("lr-find", "--data", synth_small, "--start", "1", "--end", "0.1", "--out", out)
    assert res.code == 1
    assert "0 < start < end" in res.err and "\n" not in res.err.strip()
