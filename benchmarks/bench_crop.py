"""Full-frame resizing vs centre-cropping, and C chosen by cross-validation vs a fixed C.

For each dataset, efficientnet_lite0 (packaged ImageNet weights, frozen) features are computed
once per crop mode (cached), then three heads are fitted on the same training images: logistic
regression and a linear SVM with ``--C auto`` (5-fold stratified CV over the log grid) and with
the old fixed ``C=1``, and a gradient-trained linear head. Test accuracy on the held-out split.

Datasets: ../shared/datasets/intel-sample (real photos, 150 px; 100 train + 50 test per class,
seeded) and the synthetic set of ``landscape data synth`` (80 per class, seed 0).

    python benchmarks/bench_crop.py [--datasets intel,synth]
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


def _intel_manifest(out: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for cls in sorted(p.name for p in INTEL.iterdir() if p.is_dir()):
        files = sorted((INTEL / cls).glob("*.jpg"))
        order = rng.permutation(len(files))
        rows += [(files[i], cls, "train") for i in order[:100]]
        rows += [(files[i], cls, "test") for i in order[100:]]
    path = out / "intel.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows((str(f), c, s) for f, c, s in rows)
    return path


def _synth(out: Path) -> Path:
    from landscape.data.synth import SynthSpec, generate_dataset

    data = out / "synth"
    generate_dataset(data, SynthSpec(per_class=80, seed=0))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="intel,synth")
    args = parser.parse_args()

    from landscape.config import load_train_config
    from landscape.train.trainer import fit

    rows: list[tuple[str, str, str, float, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = {"intel": lambda: _intel_manifest(root), "synth": lambda: _synth(root)}
        for name in args.datasets.split(","):
            data = sources[name]()
            for crop in ("center", "full"):
                for head, over in HEADS.items():
                    out = root / f"{name}-{crop}-{head.replace(' ', '_')}"
                    cfg = load_train_config(
                        None,
                        {
                            "data": str(data),
                            "out": str(out),
                            "backbone": "efficientnet_lite0",
                            "weights": "packaged",
                            "crop": crop,
                            "seed": 0,
                            "progress": False,
                            **over,
                        },
                    )
                    metrics = fit(cfg).metrics
                    rows.append((name, crop, head, metrics["test_acc"], metrics.get("C")))
                    print(
                        f"{name:6s} {crop:6s} {head:18s} test_acc={metrics['test_acc']:.4f}"
                        + (f" C={metrics['C']:g}" if metrics.get("C") else ""),
                        flush=True,
                    )
    print("\n| dataset | head | center crop | full frame | Δ |")
    print("|---|---|---|---|---|")
    for name in args.datasets.split(","):
        for head in HEADS:
            acc = {c: a for n, c, h, a, _ in rows if n == name and h == head}
            print(
                f"| {name} | {head} | {acc['center']:.3f} | {acc['full']:.3f} | "
                f"{acc['full'] - acc['center']:+.3f} |"
            )


if __name__ == "__main__":
    main()
