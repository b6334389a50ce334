"""Indexing throughput against the pure model, re-run speed, JPEG draft on/off, workers 1/2.

Generates N synthetic 1920×1080 JPEGs with EXIF/GPS (``landscape data synth`` drawing at that
size), trains nothing: a packaged efficientnet_lite0 bundle with a fresh linear head stands in
for a trained one (the cost is the backbone's). Prints, from one run:

- pure model images/s: the same Predictor backend on pre-decoded tensors;
- ``landscape index`` files/s on a fresh database for each (draft, workers) setting, and its
  ratio to the pure model (target ≥ 0.7× with the ONNX backend);
- the re-run over the unchanged tree, and its speed-up over the first run (target ≥ 50×).

    python benchmarks/bench_index.py [--files 1000] [--backend onnx|torch]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def _archive(out: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    from landscape.data.synth import SynthSpec, generate_dataset

    seeds = out / "seeds"
    generate_dataset(seeds, SynthSpec(per_class=max(1, n // 25), size=540, seed=0))
    sources = sorted(seeds.rglob("*.jpg"))
    archive = out / "archive"
    rng = np.random.default_rng(0)
    for i in range(n):
        src = sources[i % len(sources)]
        folder = archive / f"campaign-{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(src) as img:
            exif = img.getexif()
            big = img.resize((1920, 1080))
            # A little noise per copy: every file has its own content hash.
            pixels = np.asarray(big, dtype=np.int16) + rng.integers(-2, 3, (1080, 1920, 3))
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                folder / f"img_{i:05d}.jpg", quality=88, exif=exif
            )
    shutil.rmtree(seeds)
    return archive


def _bundle(out: Path, backend: str) -> Path:
    import torch

    from landscape.config import HeadSpec
    from landscape.inference.export import export_onnx
    from landscape.models.bundle import save_bundle
    from landscape.models.net import create_model
    from landscape.models.weights import pretrained_preprocessing

    torch.manual_seed(0)
    classes = ["coast", "desert", "forest", "glacier", "mountain"]
    head = HeadSpec(kind="linear")
    net, record = create_model("efficientnet_lite0", len(classes), weights="packaged", head=head)
    path = save_bundle(
        out / "bundle",
        net,
        classes=classes,
        preprocessing=pretrained_preprocessing(net.info, record),
        head=head,
        weights=record.to_dict(),
    )
    if backend != "torch":
        export_onnx(path)
    return path


def _pure_model(bundle: Path, backend: str, n: int) -> float:
    import torch

    from landscape.inference.predictor import Predictor

    predictor = Predictor.from_bundle(bundle, backend=backend)
    size = predictor.bundle.preprocessing.input_size
    batch = torch.randn(32, 3, size, size)
    predictor.logits_and_features(batch)  # warm-up
    started = time.perf_counter()
    done = 0
    while done < n:
        predictor.logits_and_features(batch)
        done += len(batch)
    return done / (time.perf_counter() - started)


def _index(archive: Path, db: Path, bundle: Path, backend: str, **options: object) -> float:
    from landscape.index.db import open_index
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.inference.predictor import Predictor

    engine = open_index(f"sqlite:///{db}")
    predictor = Predictor.from_bundle(bundle, backend=backend)
    started = time.perf_counter()
    run_index(engine, [archive], predictor=predictor, options=IndexOptions(**options))  # type: ignore[arg-type]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = _archive(root, args.files)
        bundle = _bundle(root, args.backend)
        pure = _pure_model(bundle, args.backend, max(256, args.files // 2))
        print(f"pure model ({args.backend}): {pure:.1f} images/s")
        first = None
        for draft in (True, False):
            for workers in (1, 2):
                db = root / f"index-{draft}-{workers}.db"
                seconds = _index(archive, db, bundle, args.backend, draft=draft, workers=workers)
                rate = args.files / seconds
                print(
                    f"index draft={'on ' if draft else 'off'} workers={workers}: "
                    f"{rate:.1f} files/s = {rate / pure:.2f}x the pure model"
                )
                if draft and workers == 2:
                    first = (db, seconds)
        assert first is not None
        again = _index(archive, first[0], bundle, args.backend, workers=2)
        print(f"re-run over the unchanged tree: {again:.2f} s = {first[1] / again:.0f}x faster")


if __name__ == "__main__":
    main()
