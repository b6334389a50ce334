"""The index's local engine against its Ray Data engine on this machine, side by side.

Camera-sized synthetic JPEGs (1920×1080, EXIF, GPS, grain), the packaged efficientnet_lite0
with a fresh head (ONNX), a fresh SQLite database per run. For each archive size prints the
local engine's files/s, the Ray engine's on a running local instance (its start timed apart:
``landscape index --engine ray`` without ``--address`` pays it each run), and the ratio, so
the fixed cost and the per-file cost of Ray are both visible:

    python benchmarks/bench_engines.py [--sizes 100,1000] [--cpus 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_index import _archive, _bundle


def _run(archive: Path, url: str, bundle: Path, options: object) -> float:
    from landscape.index.db import open_index
    from landscape.index.pipeline import run_index
    from landscape.inference.predictor import Predictor

    engine = open_index(url)
    predictor = Predictor.from_bundle(bundle, backend="onnx")
    started = time.perf_counter()
    run_index(engine, [archive], predictor=predictor, options=options)  # type: ignore[arg-type]
    return time.perf_counter() - started


def main() -> None:
    import ray

    from landscape.index.pipeline import IndexOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    local = IndexOptions(workers=args.cpus)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle = _bundle(root, "onnx")
        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        print(f"Ray local instance start: {time.perf_counter() - started:.1f} s", flush=True)
        for n in (int(s) for s in args.sizes.split(",")):
            archive = _archive(root / f"a{n}", n)
            files = sum(1 for p in archive.rglob("*") if p.is_file())
            seconds = {
                "local": _run(archive, f"sqlite:///{root / f'l{n}.db'}", bundle, local),
                "ray, workers=1": _run(
                    archive,
                    f"sqlite:///{root / f'r1{n}.db'}",
                    bundle,
                    replace(local, engine="ray", workers=1),
                ),
                "ray, workers=2": _run(
                    archive,
                    f"sqlite:///{root / f'r2{n}.db'}",
                    bundle,
                    replace(local, engine="ray", workers=2),
                ),
            }
            for name, s in seconds.items():
                print(
                    f"{files} files, {name}: {s:.1f} s = {files / s:.1f} files/s = "
                    f"{s / seconds['local']:.2f}x the local engine's time",
                    flush=True,
                )
        ray.shutdown()


if __name__ == "__main__":
    main()
