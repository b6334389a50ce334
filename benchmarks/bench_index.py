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
import tempfile
import time
from pathlib import Path


def _archive(out: Path, n: int) -> Path:
    """``n`` camera-sized photos (1920×1080, EXIF, GPS, sensor grain) in campaign folders."""
    from landscape.data.archive import ArchiveSpec, build_archive

    spec = ArchiveSpec(
        per_class=max(1, n // 5), size=256, resolution=(1920, 1080), grain=2, odd_files=False
    )
    return build_archive(out / "archive", spec).root


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


def _index(archive: Path, url: str, bundle: Path, backend: str, **options: object) -> float:
    from landscape.index.db import open_index
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.inference.predictor import Predictor

    engine = open_index(url)
    predictor = Predictor.from_bundle(bundle, backend=backend)
    started = time.perf_counter()
    run_index(engine, [archive], predictor=predictor, options=IndexOptions(**options))  # type: ignore[arg-type]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    parser.add_argument(
        "--postgres", action="store_true", help="also the draft-on, 2-worker run on PostgreSQL"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = _archive(root, args.files)
        files = sum(1 for p in archive.rglob("*") if p.is_file())
        bundle = _bundle(root, args.backend)
        pure = _pure_model(bundle, args.backend, max(256, files // 2))
        print(f"pure model ({args.backend}): {pure:.1f} images/s", flush=True)
        first = None
        for draft in (True, False):
            for workers in (1, 2):
                url = f"sqlite:///{root / f'index-{draft}-{workers}.db'}"
                seconds = _index(archive, url, bundle, args.backend, draft=draft, workers=workers)
                rate = files / seconds
                print(
                    f"index draft={'on ' if draft else 'off'} workers={workers}: "
                    f"{rate:.1f} files/s = {rate / pure:.2f}x the pure model",
                    flush=True,
                )
                if draft and workers == 2:
                    first = (url, seconds)
        assert first is not None
        again = _index(archive, first[0], bundle, args.backend, workers=2)
        print(f"re-run over the unchanged tree: {again:.2f} s = {first[1] / again:.0f}x faster")
        if args.postgres:
            from landscape.index._testing import PostgresServer

            with PostgresServer(durable=True) as server:
                url = server.create_database("bench", vector=True)
                pg = _index(archive, url, bundle, args.backend, workers=2)
                print(
                    f"PostgreSQL (durable commits), draft on, workers=2: {files / pg:.1f} files/s"
                    f" = {pg / first[1]:.2f}x SQLite's time"
                )


if __name__ == "__main__":
    main()
