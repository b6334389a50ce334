"""Peak RSS of a training run vs dataset size: streaming loaders keep it flat.

Runs ``landscape train`` (tiny_cnn, all layers, 1 epoch) in a fresh process on synthetic datasets
of growing size and prints each process's peak resident memory (ru_maxrss) side by side.

    python benchmarks/bench_peak_rss.py [--sizes 40,160,640]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="40,160,640", help="images per class")
    parser.add_argument("--backbone", default="tiny_cnn")
    args = parser.parse_args()
    from landscape.data.synth import SynthSpec, generate_dataset

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for per_class in (int(s) for s in args.sizes.split(",")):
            data = Path(tmp) / f"d{per_class}"
            generate_dataset(data, SynthSpec(per_class=per_class, size=160, seed=0))
            args_list = [
                "train", "--data", str(data), "--backbone", args.backbone, "--weights", "none",
                "--policy", "all", "--epochs", "1", "--no-progress",
                "--out", str(Path(tmp) / f"r{per_class}"),
            ]  # fmt: skip
            # A fresh interpreter per size; it reports its own peak and its workers' peak.
            code = (
                "import resource, sys; from landscape.cli import main; "
                f"rc = main({args_list!r}); "
                "r = resource.getrusage; "
                "print(r(resource.RUSAGE_SELF).ru_maxrss, r(resource.RUSAGE_CHILDREN).ru_maxrss); "
                "sys.exit(rc)"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            )
            main_kib, worker_kib = (int(v) for v in out.stdout.split()[-2:])
            rows.append((per_class * 5, main_kib / 1024, worker_kib / 1024))
    print(f"{'images':>8s} {'main peak MiB':>14s} {'worker peak MiB':>16s}")
    for n, main_mib, worker_mib in rows:
        print(f"{n:8d} {main_mib:14.0f} {worker_mib:16.0f}")
    print(f"growth from {rows[0][0]} to {rows[-1][0]} images: {rows[-1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
