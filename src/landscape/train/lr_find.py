"""Learning-rate range test (Smith 2015; fastai's ``lr_find``).

Train for ``steps`` mini-batches while the learning rate grows exponentially from ``start`` to
``end``, record the loss, smooth it (exponential moving average, β = 0.98, bias-corrected) and
stop once it exceeds 4× the best value seen (divergence). The suggestion is the rate where the
smoothed loss falls fastest (steepest negative slope against log-LR); the fastai ``valley`` rule
and "minimum / 10" are reported beside it.

The data are prepared exactly as ``landscape train`` prepares them (split, subsampling,
preprocessing); a frozen backbone with a deterministic transform runs on cached features. The
model and the optimiser live in memory only and are discarded: nothing is written but ``out``
(``lr_find.csv``, ``lr_find.png``, the ``split.csv`` manifest used) and, as in training, the
shared feature cache.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from landscape.config import TrainConfig
from landscape.data.datasets import ImageDataset
from landscape.data.transforms import batch_mixer, train_transform
from landscape.errors import ConfigError
from landscape.models.freezing import parse_policy
from landscape.models.net import create_model

from .data_prep import (
    class_weights,
    extract_split_features,
    make_loaders,
    prepare_data,
    resolve_preprocessing,
)
from .optim import build_optimizer
from .trainer import plan_stages

__all__ = [
    "LRFindResult",
    "lr_find",
    "plot_lr_find",
    "range_test",
    "suggest_lrs",
    "write_lr_csv",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LRFindResult:
    """The recorded curve and the suggested learning rates."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    suggestions: dict[str, float]
    start: float
    end: float
    steps: int
    diverged: bool
    cached: bool = False
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self, *, curve: bool = False) -> dict[str, Any]:
        """JSON-ready summary (the whole curve only with ``curve=True``)."""
        data = asdict(self)
        if not curve:
            for key in ("lrs", "losses", "smoothed"):
                data.pop(key)
        data["steps_run"] = len(self.lrs)
        return data


def _check_range(start: float, end: float, steps: int) -> None:
    if not (start > 0 and end > start and math.isfinite(end)):
        raise ConfigError(
            f"learning-rate range must satisfy 0 < start < end, got {start:g}..{end:g}",
            fix="e.g. --start 1e-7 --end 10",
        )
    if steps < 5:
        raise ConfigError(f"--steps must be at least 5, got {steps}", fix="use e.g. --steps 100")


def _cycle(loader: Any) -> Iterator[Any]:
    epoch = 0
    while True:
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)  # a new shuffle per pass, as in training
        yielded = False
        for batch in loader:
            if batch is not None:
                yielded = True
                yield batch
        if not yielded:
            raise ConfigError("no decodable training image", fix="check the dataset")
        epoch += 1


def range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[float], list[float], list[float], bool]:
    """Run the test on ``model`` in place; returns ``(lrs, losses, smoothed, diverged)``.

    Each parameter group keeps its ratio to the optimiser's first group (so discriminative
    learning rates stay discriminative) while that first group follows the exponential ramp.
    """
    _check_range(start, end, steps)
    base = optimizer.param_groups[0]["lr"] or 1.0
    ratios = [group["lr"] / base for group in optimizer.param_groups]
    factor = (end / start) ** (1.0 / (steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, diverged = 0.0, math.inf, False
    device = next(model.parameters()).device
    model.train()
    for step in range(steps):
        lr = start * factor**step
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            group["lr"] = lr * ratio
        x, y = (t.to(device) for t in next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        loss.backward()
        optimizer.step()
        average = beta * average + (1 - beta) * value
        smooth = average / (1 - beta ** (step + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        if progress is not None:
            progress(1)
        best = min(best, smooth)
        if step > 0 and smooth > diverge * best:
            diverged = True
            break
    return lrs, losses, smoothed, diverged


def _valley(losses: np.ndarray) -> int:
    """fastai's ``valley``: the middle of the longest descending run of the loss curve."""
    n = len(losses)
    run = np.ones(n, dtype=int)  # length of the longest decreasing subsequence ending at i
    end = 0
    for i in range(1, n):
        earlier = losses[:i] > losses[i]
        if earlier.any():
            run[i] = run[:i][earlier].max() + 1
        if run[i] > run[end]:
            end = i
    start = end - run[end]
    third = (end - start) / 3
    return max(0, min(n - 1, start + int(third) + int(third / 2)))


def suggest_lrs(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    """``steep`` (fastest descent of the smoothed loss), ``valley`` and ``minimum`` (÷ 10).

    As in fastai, the first tenth of the curve (a moving average of a handful of noisy batches)
    is skipped, and so is what follows the minimum (the divergence that ended the test), so the
    slope is measured on the descending part of the curve.
    """
    if len(lrs) < 5:
        raise ConfigError(
            f"the loss diverged after {len(lrs)} steps: too few points to suggest a rate",
            fix="lower --start or --end",
        )
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(smoothed, dtype=np.float64)
    skip = len(lr) // 10
    low = skip + int(loss[skip:].argmin())
    window = slice(skip, max(low + 1, skip + 3))
    slope = np.gradient(loss[window], np.log10(lr[window]))
    return {
        "steep": float(lr[skip + int(slope.argmin())]),
        "valley": float(lr[skip + _valley(loss[skip:])]),
        "minimum": float(lr[low] / 10.0),
    }


def write_lr_csv(result: LRFindResult, path: Path) -> Path:
    """``step,lr,loss,smoothed_loss`` per recorded step."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "lr", "loss", "smoothed_loss"])
        for i, (lr, loss, smooth) in enumerate(
            zip(result.lrs, result.losses, result.smoothed, strict=True)
        ):
            writer.writerow([i, f"{lr:.6e}", f"{loss:.6f}", f"{smooth:.6f}"])
    return path


def plot_lr_find(result: LRFindResult, path: Path) -> Path:
    """Loss against learning rate (log x), raw and smoothed, with the suggestions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", linewidth=1.8, label="smoothed loss")
    curve = dict(zip(result.lrs, result.smoothed, strict=True))
    styles = {"steep": ("C3", "o"), "valley": ("C2", "s"), "minimum": ("C1", "^")}
    for name, lr in result.suggestions.items():
        color, marker = styles.get(name, ("k", "x"))
        nearest = min(curve, key=lambda x: abs(math.log(x) - math.log(lr)))
        ax.axvline(lr, color=color, linestyle=":", linewidth=1)
        ax.plot([lr], [curve[nearest]], marker=marker, color=color, label=f"{name} {lr:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    smooth = [v for v in result.smoothed if math.isfinite(v)]
    if smooth:  # the divergence spike would squash the interesting part of the curve
        low = min(smooth + [v for v in result.losses if math.isfinite(v)])
        high = min(max(smooth), smooth[0] * 1.5)
        pad = 0.05 * max(high - low, 1e-6)
        ax.set_ylim(low - pad, high + pad)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"lr-find: suggested {result.suggestion:.2e}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def lr_find(
    cfg: TrainConfig,
    *,
    out: Path,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
) -> LRFindResult:
    """Range-test the first training stage of ``cfg``; write ``lr_find.csv``/``.png`` to ``out``.

    The model, head, freezing policy, optimiser (with its parameter groups and weight decay),
    loss (label smoothing, class weights), batch size and data pipeline are those ``landscape
    train`` would use; the schedule is replaced by the exponential ramp.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    _check_range(start, end, steps)
    if cfg.head.classic:
        raise ConfigError(
            f"--head {cfg.head.kind} is fitted by scikit-learn and has no learning rate",
            fix="use --head linear or mlp",
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    prepared = prepare_data(cfg, out)
    splits, classes = prepared.splits, prepared.classes
    stage = plan_stages(cfg)[0]
    policy = parse_policy(stage.policy)
    net, record = create_model(
        cfg.backbone, len(classes), weights=cfg.weights, sha256=cfg.weights_sha256, head=cfg.head
    )
    net.freeze(policy, cfg.bn)
    pre = resolve_preprocessing(net, record, cfg, splits["train"])
    mixer = batch_mixer(len(classes), cfg.mixup, cfg.cutmix)
    cached = (
        policy.trainable_blocks == 0
        and cfg.augmentation == "none"
        and mixer is None
        and cfg.cache_features != "off"
    )
    model: nn.Module
    if cached:
        x, y = extract_split_features(net, record, pre, {"train": splits["train"]}, classes, cfg)[
            "train"
        ]
        data: dict[str, Any] = {"train": TensorDataset(torch.from_numpy(x), torch.from_numpy(y))}
        model = net.head
    else:
        data = {
            "train": ImageDataset(splits["train"], classes, train_transform(pre, cfg.augmentation))
        }
        model = net
    loader = make_loaders(cfg, data, cached=cached)["train"]
    weights = class_weights(splits["train"], classes) if cfg.optim.class_weights else None

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(
            logits.float(), target, weight=weights, label_smoothing=cfg.optim.label_smoothing
        )

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in _cycle(loader):
            yield mixer(x, y) if (mixer is not None and not cached) else (x, y)

    if cfg.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        model.to("cuda")
        weights = weights.to("cuda") if weights is not None else None
    optimizer = build_optimizer(model, cfg.optim)
    # A head on cached features is a handful of tiny matmuls per step: intra-op threads only
    # spin-wait on each other (measured 25x slower with 2 threads on a busy 2-core machine).
    threads = torch.get_num_threads()
    if cached:
        torch.set_num_threads(1)
    try:
        with Progress(
            TextColumn("[bold]lr-find"),
            BarColumn(),
            MofNCompleteColumn(),
            disable=not cfg.progress,
        ) as bar:
            task = bar.add_task("lr-find", total=steps)
            lrs, losses, smoothed, diverged = range_test(
                model,
                optimizer,
                batches(),
                loss_fn,
                start=start,
                end=end,
                steps=steps,
                beta=beta,
                diverge=diverge,
                progress=lambda n: bar.advance(task, n),
            )
    finally:
        torch.set_num_threads(threads)
    suggestions = suggest_lrs(lrs, smoothed)
    result = LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggestions["steep"],
        suggestions=suggestions,
        start=start,
        end=end,
        steps=steps,
        diverged=diverged,
        cached=cached,
    )
    result.files = {
        "csv": str(write_lr_csv(result, out / "lr_find.csv")),
        "png": str(plot_lr_find(result, out / "lr_find.png")),
    }
    return result
