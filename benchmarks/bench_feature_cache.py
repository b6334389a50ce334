"""Frozen-backbone head training: feature cache vs running the backbone every epoch.

Trains the same head (efficientnet_lite0, packaged weights, frozen, 10 epochs) twice on the same
synthetic data and split, once with ``--cache-features on`` (cold cache: extraction included) and
once with ``off``, and prints both wall times, the ratio and both test accuracies.

    python benchmarks/bench_feature_cache.py [--per-class 40] [--epochs 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LANDSCAPE_CACHE"] = str(Path(tmp) / "cache")
        from landscape.config import load_train_config
        from landscape.data.synth import SynthSpec, generate_dataset
        from landscape.train.trainer import fit

        data = Path(tmp) / "data"
        generate_dataset(data, SynthSpec(per_class=args.per_class, seed=0))
        results = {}
        for mode in ("on", "off"):
            cfg = load_train_config(
                None,
                {
                    "data": str(data),
                    "out": str(Path(tmp) / f"run-{mode}"),
                    "backbone": "efficientnet_lite0",
                    "weights": "packaged",
                    "policy": "frozen",
                    "epochs": args.epochs,
                    "cache_features": mode,
                    "progress": False,
                },
            )
            start = time.perf_counter()
            result = fit(cfg)
            results[mode] = (time.perf_counter() - start, result.metrics["test_acc"])
            print(f"cache {mode:3s}: {results[mode][0]:7.1f} s  test_acc={results[mode][1]:.3f}")
        ratio = results["off"][0] / results["on"][0]
        print(f"speed-up of the feature cache (cold, extraction included): {ratio:.1f}x")


if __name__ == "__main__":
    main()
