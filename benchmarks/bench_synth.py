"""Synthetic landscape generator throughput: images/s at 224 px, JPEG encode and write included.

Run with ``python benchmarks/bench_synth.py [n_images]`` (500 by default); files go to a temporary
folder that is removed afterwards. Besides wall-clock images/s it prints images per second of this
process's CPU time, which other jobs sharing the machine disturb much less.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from landscape.data.synth import CLASSES, SynthSpec, generate_dataset


def main(n_images: int = 500) -> float:
    """Generate ``n_images`` (rounded up to a multiple of the class count); return images/s."""
    per_class = -(-n_images // len(CLASSES))
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        cpu = time.process_time()
        result = generate_dataset(Path(tmp), SynthSpec(per_class=per_class, size=224, seed=0))
        cpu = time.process_time() - cpu
    rate = result.n_images / result.seconds
    print(
        f"{result.n_images} images of 224 px in {result.seconds:.2f} s: {rate:.0f} images/s "
        f"(wall clock), {result.n_images / cpu:.0f} images per CPU second"
    )
    return rate


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
