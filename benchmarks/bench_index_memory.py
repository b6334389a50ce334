"""Peak memory of ``landscape index`` against archive size: the pipeline keeps it flat.

Builds archives of N photos (camera-like JPEGs with EXIF/GPS in campaign folders) for each size,
indexes each in a fresh ``landscape index`` process (efficientnet_lite0 through ONNX Runtime, a
fresh SQLite database) and prints, side by side, the main process's own peak RSS (ru_maxrss)
and the peak of the whole process tree (main + forkserver + decode workers, sampled every
0.1 s), then their ratio between the largest and the smallest archive (target ≤ 1.2×).

    python benchmarks/bench_index_memory.py [--sizes 1000,10000] [--resolution 640x480]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_index import _bundle


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def _run(archive: Path, db: Path, bundle: Path) -> tuple[float, float, float, int]:
    """(seconds, main peak MiB, tree peak MiB, files) of one ``landscape index`` process."""
    args = [
        "index", str(archive), "--db", f"sqlite:///{db}", "--model", str(bundle),
        "--backend", "onnx", "--workers", "2", "--json",
    ]  # fmt: skip
    code = (
        "import resource, sys; from landscape.cli import main; "
        f"rc = main({args!r}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
        "sys.exit(rc)"
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.1)
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"landscape index failed:\n{err}")
    seconds = time.perf_counter() - started
    import json

    summary = json.loads(out)
    files = sum(summary["outcomes"].values())
    main_kib = int(err.strip().splitlines()[-1])
    return seconds, main_kib / 1024, peak / 2**20, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="photos per archive")
    parser.add_argument("--resolution", default="640x480", help="WxH of every photo")
    args = parser.parse_args()
    from landscape.data.archive import ArchiveSpec, build_archive

    width, height = (int(v) for v in args.resolution.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle = _bundle(root, "onnx")
        for n in (int(s) for s in args.sizes.split(",")):
            spec = ArchiveSpec(
                per_class=max(1, n // 5), size=96, resolution=(width, height), grain=2
            )
            archive = build_archive(root / f"archive-{n}", spec).root
            seconds, main_mib, tree_mib, files = _run(archive, root / f"index-{n}.db", bundle)
            rows.append((files, seconds, main_mib, tree_mib))
            print(
                f"{files:7d} files: {files / seconds:6.1f} files/s, main peak {main_mib:6.0f} MiB,"
                f" process tree peak {tree_mib:6.0f} MiB",
                flush=True,
            )
    (n0, _, main0, tree0), (n1, _, main1, tree1) = rows[0], rows[-1]
    print(
        f"{n0} → {n1} files: main peak {main1 / main0:.2f}x, process tree peak {tree1 / tree0:.2f}x"
    )


if __name__ == "__main__":
    main()
