"""Input pipeline: images/s of decode + augment with 0, 1, 2 DataLoader workers, vs auto_workers().

Reads the real photos of ../shared/datasets/intel-sample (or a synthetic set when absent) through
``ImageDataset`` with the ``paper`` augmentation at 224 px, the work a training epoch feeds the
model, and prints each setting's rate side by side.

    python benchmarks/bench_loader.py [--images 450] [--batch 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from landscape.data.datasets import ImageDataset, load_dataset
from landscape.data.transforms import Preprocessing, train_transform
from landscape.train.feature_cache import collate_skip_none
from landscape.train.trainer import auto_workers

INTEL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "intel-sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=450)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = INTEL
        if not root.is_dir():
            from landscape.data.synth import SynthSpec, generate_dataset

            root = Path(tmp) / "data"
            generate_dataset(root, SynthSpec(per_class=args.images // 5 + 1))
        index = load_dataset(root)
        samples = index.samples[:: max(len(index.samples) // args.images, 1)][: args.images]
        pre = Preprocessing(
            input_size=224, resize_size=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
        )
        dataset = ImageDataset(samples, index.classes, train_transform(pre, "paper"))
        print(f"{len(samples)} images from {root.name}, batch {args.batch}; "
              f"auto_workers() = {auto_workers()}")  # fmt: skip
        for workers in (0, 1, 2):
            loader = DataLoader(
                dataset, batch_size=args.batch, num_workers=workers, collate_fn=collate_skip_none
            )
            start = time.perf_counter()
            n = sum(len(batch[1]) for batch in loader if batch is not None)
            rate = n / (time.perf_counter() - start)
            print(f"workers={workers}: {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
