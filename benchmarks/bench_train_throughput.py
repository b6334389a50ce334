"""Training throughput (images/s) per backbone × freezing policy, fp32 vs bf16 autocast.

Times optimiser steps (forward + backward + AdamW) on a fixed batch at each backbone's input size,
channels_last, after warm-up; all figures come from one run so their ratios are comparable.

    python benchmarks/bench_train_throughput.py [--batch 16] [--steps 6] [--backbones a,b]
"""

from __future__ import annotations

import argparse
import time

import torch

from landscape.config import OptimConfig
from landscape.models.freezing import parse_policy
from landscape.models.net import create_model
from landscape.models.registry import get_backbone_info
from landscape.train.optim import build_optimizer


def _images_per_second(name: str, policy: str, batch: int, steps: int, bf16: bool) -> float:
    net, _ = create_model(name, 5, weights="none")
    net.freeze(parse_policy(policy))
    net = net.to(memory_format=torch.channels_last).train()
    size = get_backbone_info(name).input_size
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (batch,))
    opt = build_optimizer(net, OptimConfig())

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--backbones", default="efficientnet_lite0,mobilenet_v2,resnet18,tiny_cnn")
    parser.add_argument(
        "--bf16", action="store_true", help="also time bf16 autocast (very slow without AMX)"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(
        f"{'backbone':20s} {'policy':10s} {'fp32 img/s':>11s} {'bf16 img/s':>11s} {'bf16/fp32':>9s}"
    )
    for name in args.backbones.split(","):
        for policy in ("frozen", "deepest:1", "all"):
            fp32 = _images_per_second(name, policy, args.batch, args.steps, bf16=False)
            if args.bf16:
                bf16 = _images_per_second(name, policy, args.batch, args.steps, bf16=True)
                print(f"{name:20s} {policy:10s} {fp32:11.1f} {bf16:11.1f} {bf16 / fp32:9.2f}")
            else:
                print(f"{name:20s} {policy:10s} {fp32:11.1f} {'-':>11s} {'-':>9s}")


if __name__ == "__main__":
    main()
