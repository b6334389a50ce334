"""channels_last vs the default (contiguous NCHW) memory format for CPU inference, side by side.

The Predictor's torch backend converts the model and every batch to channels_last; this measures
what that buys. Each backbone is built once (``--weights none``: speed does not depend on the
values) with a 6-class head, and the *same* model object is switched between the two formats
round by round (contiguous, channels_last, contiguous, …) so machine noise hits both alike. Per
format: batch 1 (median ms/image over ``--reps`` calls) and batch 32 (images/s, median over
rounds); the ratio columns are contiguous time / channels_last time (> 1: channels_last faster).

    python benchmarks/bench_channels_last.py [--backbones a,b] [--rounds 2] [--reps 5]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable

import torch

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _timed(fn: Callable[[], object], reps: int) -> float:
    """Median seconds of ``reps`` calls."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bench(name: str, rounds: int, reps: int, size: int) -> dict[str, dict[str, float]]:
    from landscape.models.net import create_model

    torch.manual_seed(0)
    net, _ = create_model(name, 6, weights="none")
    net.eval()
    inputs = {1: torch.randn(1, 3, size, size), 32: torch.randn(32, 3, size, size)}
    samples: dict[str, dict[int, list[float]]] = {f: {1: [], 32: []} for f in FORMATS}

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        # What the Predictor's torch backend does per batch.
        return net.head(net.features(x))

    for round_ in range(rounds + 1):  # round 0 warms both formats up and is discarded
        for label, fmt in FORMATS.items():
            net.to(memory_format=fmt)
            for batch, x in inputs.items():
                xf = x.contiguous(memory_format=fmt)
                seconds = _timed(lambda xf=xf: run(xf), reps if batch == 1 else 1)
                if round_:
                    samples[label][batch].append(seconds)
    return {
        label: {
            "b1_ms": 1000 * statistics.median(per[1]),
            "b32_ips": 32 / statistics.median(per[32]),
        }
        for label, per in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="efficientnet_lite0,resnet18,mobilenet_v2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5, help="batch-1 calls per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# {datetime.date.today()} torch {torch.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, {args.size}px, rounds {args.rounds}"
    )
    header = (
        f"{'backbone':<20}{'b1 ms NCHW':>12}{'b1 ms CL':>10}{'ratio':>7}"
        f"{'b32 img/s NCHW':>16}{'b32 img/s CL':>14}{'ratio':>7}"
    )
    print(header)
    started = time.perf_counter()
    for name in args.backbones.split(","):
        r = _bench(name.strip(), args.rounds, args.reps, args.size)
        nchw, cl = r["contiguous"], r["channels_last"]
        print(
            f"{name:<20}{nchw['b1_ms']:>12.1f}{cl['b1_ms']:>10.1f}"
            f"{nchw['b1_ms'] / cl['b1_ms']:>7.2f}"
            f"{nchw['b32_ips']:>16.1f}{cl['b32_ips']:>14.1f}"
            f"{cl['b32_ips'] / nchw['b32_ips']:>7.2f}",
            flush=True,
        )
    print(f"# total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
