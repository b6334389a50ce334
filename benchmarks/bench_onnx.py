"""ONNX Runtime vs torch inference on this CPU, through the same Predictor, side by side.

For each backbone a bundle is saved (offline weights where there are some; latency does not
depend on the weight values), exported with ``landscape export``'s code, and timed with both
backends on the same preprocessed batches, rounds interleaved (torch, onnx, torch, onnx, …) so
machine noise hits both alike: batch 1 (ms/image, p50) and batch 32 (images/s). The end-to-end
column is ``Predictor.predict`` on 32 JPEG bytes (decode + preprocess + model).

    python benchmarks/bench_onnx.py [--backbones a,b] [--rounds 5] [--int8]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

INTEL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "intel-sample"


def _bundle(name: str, out: Path) -> Path:
    from landscape.models.heads import HeadSpec
    from landscape.models.net import create_model
    from landscape.models.registry import get_backbone_info
    from landscape.models.weights import pretrained_preprocessing

    info = get_backbone_info(name)
    weights = "packaged" if "packaged" in info.weight_sources else "none"
    net, record = create_model(name, 6, weights=weights, head=HeadSpec())
    pre = pretrained_preprocessing(info, record)
    from landscape.models.bundle import save_bundle

    return save_bundle(
        out / name, net, classes=[str(i) for i in range(6)], preprocessing=pre,
        head=HeadSpec(), weights=record.to_dict(),
    )  # fmt: skip


def _jpegs(n: int) -> list[bytes]:
    files = sorted(INTEL.rglob("*.jpg"))[:n] if INTEL.is_dir() else []
    if files:
        return [f.read_bytes() for f in files]
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 60)).save(buf, "JPEG")
    return [buf.getvalue()] * n


def _time(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbones", default="efficientnet_lite0,mobilenet_v2,resnet18")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--int8", action="store_true", help="also time the int8 graph (calibrated on the photos)"
    )
    args = parser.parse_args()
    from landscape.inference import Predictor
    from landscape.inference.export import export_onnx
    from landscape.inference.quantize import quantize_onnx

    torch.set_num_threads(min(os.cpu_count() or 1, 4))
    jpegs = _jpegs(32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{os.getloadavg()[0]:.1f}; {args.rounds} interleaved rounds")  # fmt: skip
    header = (
        f"{'backbone':20s} {'backend':8s} {'b1 p50 ms':>10s} {'b32 img/s':>10s} {'e2e img/s':>10s}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backbones.split(","):
            path = _bundle(name, Path(tmp))
            export_onnx(path)
            backends = ["torch", "onnx"]
            if args.int8:
                # Speed only: the head here is untrained, so agreement with fp32 means little.
                quantize_onnx(path, jpegs, min_agreement=0.0)
                backends.append("onnx-int8")
            predictors = {b: Predictor.from_bundle(path, backend=b) for b in backends}
            batch = torch.stack([predictors["torch"].preprocess(j) for j in jpegs])
            single = batch[:1]
            b1: dict[str, list[float]] = {b: [] for b in predictors}
            b32: dict[str, list[float]] = {b: [] for b in predictors}
            e2e: dict[str, list[float]] = {b: [] for b in predictors}
            for p in predictors.values():  # warm-up
                p.logits(batch)
                p.logits(single)
            for _ in range(args.rounds):
                for backend, p in predictors.items():
                    b1[backend] += _time(lambda p=p, x=single: p.logits(x), 10)
                    b32[backend] += _time(lambda p=p, x=batch: p.logits(x), 1)
                    e2e[backend] += _time(lambda p=p: p.predict(jpegs, batch_size=32), 1)
            rows = {}
            for backend in predictors:
                rows[backend] = (
                    statistics.median(b1[backend]) * 1000,
                    32 / statistics.median(b32[backend]),
                    32 / statistics.median(e2e[backend]),
                )
                ms, ips, eps = rows[backend]
                print(f"{name:20s} {backend:8s} {ms:10.2f} {ips:10.1f} {eps:10.1f}", flush=True)
            t = rows["torch"]
            for backend in backends[1:]:
                o = rows[backend]
                print(f"{'':20s} {backend + '/torch':8s} {t[0] / o[0]:9.2f}x {o[1] / t[1]:9.2f}x "
                      f"{o[2] / t[2]:9.2f}x  (speed-up)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
