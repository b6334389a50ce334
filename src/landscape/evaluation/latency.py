"""Honest inference latency: what one image costs, measured the way a user runs the model.

Every measurement is warmed up first (the first calls pay for allocator growth and kernel
selection), runs under ``torch.inference_mode``, states the torch thread count and the CPU, and
is reported two ways:

- **model**: the network alone on already preprocessed tensors;
- **end to end**: JPEG bytes in memory → decode → preprocess → model → probabilities, i.e.
  ``Predictor.predict``; disk reads are excluded so the figure does not depend on a page cache.

Batch 1 gives per-image percentiles (p50/p90/p99 over ``runs`` timed calls); batch 32 gives
throughput in images per second. Training time is *not* inference time: :func:`model_facts`
reports it separately under its own name.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from landscape.inference import Predictor

__all__ = ["bundle_size_bytes", "cpu_name", "measure_latency", "model_facts"]


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                # x86 says "model name"; some ARM kernels only give "Hardware" or "Processor".
                if key.strip().lower() in ("model name", "hardware", "processor") and any(
                    ch.isalpha() for ch in value
                ):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def bundle_size_bytes(path: Path) -> int:
    """Bytes the bundle takes on disk (every file of a bundle folder, or the ``.landscape`` zip)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def model_facts(predictor: Predictor) -> dict[str, Any]:
    """Parameter counts, size on disk and the training wall time recorded in the bundle."""
    meta = predictor.bundle.meta
    total = sum(p.numel() for p in predictor.model.parameters())
    recorded = meta.get("params") or {}
    metrics = meta.get("metrics") or {}
    seconds = metrics.get("train_seconds")
    return {
        "params": {
            "total": int(recorded.get("total", total)),
            # Trainable means "updated during training" (e.g. only the head of a frozen
            # backbone); a loaded model has every tensor requires_grad, which says nothing.
            "trainable": int(recorded["trainable"]) if "trainable" in recorded else None,
        },
        "bundle_bytes": bundle_size_bytes(predictor.bundle.path),
        "training_seconds": float(seconds) if seconds is not None else None,
    }


def _sync(device: torch.device) -> None:
    # CUDA kernels are asynchronous: without a sync the clock stops before the work is done.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_calls(fn: Callable[[], Any], runs: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    seconds: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def _percentiles(seconds: Sequence[float], per: int) -> dict[str, Any]:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0 / per
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "runs": len(seconds),
    }


def _throughput(seconds: Sequence[float], batch: int) -> dict[str, Any]:
    total = float(sum(seconds))
    return {
        "images_per_s": round(batch * len(seconds) / total, 2) if total > 0 else None,
        "ms_per_image": round(total * 1000.0 / (batch * len(seconds)), 3),
        "batches": len(seconds),
        "batch_size": batch,
    }


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return cpu_name()


def measure_latency(
    predictor: Predictor,
    images: Sequence[bytes],
    *,
    runs: int = 30,
    warmup: int = 5,
    batch_size: int = 32,
    batches: int = 3,
) -> dict[str, Any]:
    """Time ``predictor`` on encoded images (cycled when fewer than ``batch_size``).

    Returns ``{"device", "cpu", "threads", "model": {"batch_1", "batch_N"}, "end_to_end":
    {"batch_1", "batch_N"}, ...}``; batch-1 entries hold percentiles in ms per image, batch-N
    entries images per second.
    """
    if not images:
        raise ValueError("latency needs at least one encoded image")
    if runs < 1 or batches < 1:
        raise ValueError("runs and batches must be at least 1")
    device = predictor.device
    load_before = _load_average()
    encoded = [images[i % len(images)] for i in range(max(batch_size, 1))]
    with torch.inference_mode():
        tensors = torch.stack([predictor.preprocess(b) for b in encoded])
        single = tensors[:1]

        model_b1 = _time_calls(lambda: predictor.logits(single), runs, warmup, device)
        model_bn = _time_calls(lambda: predictor.logits(tensors), batches, 1, device)
        first = encoded[:1]
        e2e_b1 = _time_calls(lambda: predictor.predict(first, batch_size=1), runs, warmup, device)
        e2e_bn = _time_calls(
            lambda: predictor.predict(encoded, batch_size=batch_size), batches, 1, device
        )
    height, width = int(single.shape[-2]), int(single.shape[-1])
    cores = os.cpu_count() or 1
    busy = load_before is not None and device.type == "cpu" and load_before > 0.5 * cores
    return {
        "device": str(device),
        "device_name": _device_name(device),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "load_average_1m": load_before,
        # Other processes competing for the cores inflate every figure: say so in the result.
        "busy_machine": busy,
        "input": f"{height}x{width}",
        "warmup": warmup,
        "model": {
            "batch_1": _percentiles(model_b1, 1),
            f"batch_{batch_size}": _throughput(model_bn, batch_size),
        },
        "end_to_end": {
            "batch_1": _percentiles(e2e_b1, 1),
            f"batch_{batch_size}": _throughput(e2e_bn, batch_size),
        },
        "note": (
            "model = network on preprocessed tensors; end_to_end = JPEG bytes in memory → decode "
            "→ preprocess → model → probabilities (Predictor.predict); training time is separate"
        ),
    }
