"""Full-frame resizing vs centre-cropping, and C chosen by cross-validation vs a fixed C.

For each dataset, efficientnet_lite0 (packaged ImageNet weights, frozen) features are computed
once per crop mode (cached), then three heads are fitted on the same training images: logistic
regression and a linear SVM with ``--C auto`` (5-fold stratified CV over the log grid) and with
the old fixed ``C=1``, and a gradient-trained linear head. Test accuracy on the held-out split.

Datasets: ../shared/datasets/intel-sample (real photos, 150 px; 100 train + 50 test per class,
seeded) and the synthetic set of ``landscape data synth`` (80 per class, seed 0).

    python benchmarks/bench_crop.py [--datasets intel,synth] [--seeds 0,1,2] [--heads NAME,...]

With several seeds (the intel split and the training seed), the table gives mean ± std and the
paired difference full − center per seed.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

INTEL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "intel-sample"

HEADS: dict[str, dict[str, Any]] = {
    "logreg C auto": {"head": {"kind": "logreg", "C": "auto"}},
    "logreg C=1": {"head": {"kind": "logreg", "C": 1.0}},
    "svm C auto": {"head": {"kind": "svm", "C": "auto"}},
    "svm C=1": {"head": {"kind": "svm", "C": 1.0}},
    "linear head (SGD)": {
        "head": {"kind": "linear"},
        "epochs": 30,
        "optim": {"lr": 0.01},
        "val_fraction": 0.15,
    },
}


def _intel_manifest(out: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for cls in sorted(p.name for p in INTEL.iterdir() if p.is_dir()):
        files = sorted((INTEL / cls).glob("*.jpg"))
        order = rng.permutation(len(files))
        rows += [(files[i], cls, "train") for i in order[:100]]
        rows += [(files[i], cls, "test") for i in order[100:]]
    path = out / f"intel-seed{seed}.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows((str(f), c, s) for f, c, s in rows)
    return path


def _synth(out: Path, seed: int) -> Path:
    from landscape.data.synth import SynthSpec, generate_dataset

    data = out / f"synth-{seed}"
    if not data.is_dir():
        generate_dataset(data, SynthSpec(per_class=80, seed=seed))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="intel,synth")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--heads", default=",".join(HEADS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    heads = args.heads.split(",")

    from landscape.config import load_train_config
    from landscape.train.trainer import fit

    acc: dict[tuple[str, str, str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.datasets.split(","):
            for seed in seeds:
                data = _intel_manifest(root, seed) if name == "intel" else _synth(root, seed)
                for crop in ("center", "full"):
                    for head in heads:
                        out = root / f"{name}-{seed}-{crop}-{head.replace(' ', '_')}"
                        cfg = load_train_config(
                            None,
                            {
                                "data": str(data),
                                "out": str(out),
                                "backbone": "efficientnet_lite0",
                                "weights": "packaged",
                                "crop": crop,
                                "seed": seed,
                                "progress": False,
                                **HEADS[head],
                            },
                        )
                        metrics = fit(cfg).metrics
                        acc[name, head, crop, seed] = metrics["test_acc"]
                        chosen = f" C={metrics['C']:g}" if metrics.get("C") else ""
                        print(
                            f"{name:6s} seed {seed} {crop:6s} {head:18s} "
                            f"test_acc={metrics['test_acc']:.4f}{chosen}",
                            flush=True,
                        )
    print("\n| dataset | head | center crop | full frame | full − center (per seed) |")
    print("|---|---|---|---|---|")
    for name in args.datasets.split(","):
        for head in heads:
            center = np.array([acc[name, head, "center", s] for s in seeds])
            full = np.array([acc[name, head, "full", s] for s in seeds])
            diffs = ", ".join(f"{d:+.3f}" for d in full - center)
            print(
                f"| {name} | {head} | {center.mean():.3f} ± {center.std():.3f} | "
                f"{full.mean():.3f} ± {full.std():.3f} | {(full - center).mean():+.3f} "
                f"({diffs}) |"
            )


if __name__ == "__main__":
    main()
