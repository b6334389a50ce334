"""Synthetic landscape generator throughput: images/s at 224 px, JPEG encode and write included.

Run with ``python benchmarks/bench_synth.py [n_images]`` (500 by default); files go to a temporary
folder that is removed afterwards.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from landscape.data.synth import CLASSES, SynthSpec, generate_dataset


def main(n_images: int = 500) -> float:
    """Generate ``n_images`` (rounded up to a multiple of the class count) and print images/s."""
    per_class = -(-n_images // len(CLASSES))
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        result = generate_dataset(Path(tmp), SynthSpec(per_class=per_class, size=224, seed=0))
    rate = result.n_images / result.seconds
    print(f"{result.n_images} images of 224 px in {result.seconds:.2f} s: {rate:.0f} images/s")
    return rate


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
