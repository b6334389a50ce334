"""Transfer learning on real photos: ../shared/datasets/intel-sample (6 classes × 150).

Seeded split per class: 100 training images (85 train + 15 validation for checkpoint selection)
and the other 50 for test. Trains each offline-weights backbone with each recipe and prints test
accuracy, training wall time and a learning curve over training-set size.

    python benchmarks/bench_intel.py [--recipes frozen-linear,frozen-mlp,finetune] [--curve]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

INTEL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "intel-sample"

RECIPES: dict[str, dict[str, Any]] = {
    "frozen-linear": {"policy": "frozen", "epochs": 30, "optim": {"lr": 0.01}},
    "frozen-mlp": {
        "policy": "frozen",
        "epochs": 30,
        "head": {"kind": "mlp", "hidden": [256], "dropout": 0.3},
        "optim": {"lr": 0.003, "label_smoothing": 0.1},
    },
    "finetune": {
        "fine_tune": {"head_epochs": 8, "unfreeze": "deepest:2"},
        "epochs": 4,
        "augmentation": "paper",
        "optim": {"lr": 0.003, "label_smoothing": 0.1, "backbone_lr_mult": 0.1},
    },
}


def _manifest(out: Path, train_per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for cls in sorted(p.name for p in INTEL.iterdir() if p.is_dir()):
        files = sorted((INTEL / cls).glob("*.jpg"))
        order = rng.permutation(len(files))
        test = [files[i] for i in order[100:]]
        pool = [files[i] for i in order[:100]]
        val, train = pool[:15], pool[15 : 15 + min(train_per_class, 85)]
        rows += [(f, cls, "train") for f in train]
        rows += [(f, cls, "val") for f in val]
        rows += [(f, cls, "test") for f in test]
    path = out / f"intel-{train_per_class}-seed{seed}.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows((str(f), c, s) for f, c, s in rows)
    return path


def _run(manifest: Path, out: Path, backbone: str, recipe: dict[str, Any]) -> dict[str, Any]:
    from landscape.config import load_train_config
    from landscape.train.trainer import fit

    cfg = load_train_config(
        None,
        {"data": str(manifest), "out": str(out), "backbone": backbone, "weights": "packaged",
         "batch_size": 32, "progress": False, "seed": 0, **recipe},
    )  # fmt: skip
    start = time.perf_counter()
    result = fit(cfg)
    return {**result.metrics, "wall_seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"
    )
    parser.add_argument("--recipes", default="frozen-linear,frozen-mlp,finetune")
    parser.add_argument("--curve", action="store_true", help="learning curve (lite0, frozen-mlp)")
    parser.add_argument(
        "--curve-seeds", type=int, default=3, help="split seeds per curve point (mean ± std)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LANDSCAPE_CACHE", str(Path(tmp) / "cache"))
        full = _manifest(Path(tmp), 100)
        print(f"{'backbone':20s} {'recipe':14s} {'test acc':>8s} {'train s':>8s}", flush=True)
        results = []
        for backbone in args.backbones.split(","):
            for name in args.recipes.split(","):
                m = _run(full, Path(tmp) / f"{backbone}-{name}", backbone, RECIPES[name])
                results.append({"backbone": backbone, "recipe": name, **m})
                print(f"{backbone:20s} {name:14s} {m['test_acc']:8.3f} {m['wall_seconds']:8.0f}",
                      flush=True)  # fmt: skip
        if args.curve:
            print(
                "learning curve (efficientnet_lite0, frozen-mlp): train images per class → test acc"
                f" over {args.curve_seeds} split seeds"
            )
            for n in (5, 10, 25, 50, 85):
                accs = []
                for seed in range(args.curve_seeds):
                    manifest = _manifest(Path(tmp), n, seed=seed)
                    m = _run(manifest, Path(tmp) / f"curve-{n}-{seed}", "efficientnet_lite0",
                             RECIPES["frozen-mlp"])  # fmt: skip
                    accs.append(m["test_acc"])
                print(f"  {n:3d} → {np.mean(accs):.3f} ± {np.std(accs):.3f}  ({accs})", flush=True)


if __name__ == "__main__":
    main()
