"""Video timelines: indexing speed as a multiple of real time, keyframe-aware seeking vs
decoding every frame, and sampled frames/s against the pure model.

Writes a 1080p H.264 clip of landscape scenes (``data.synth_video``, 25 fps) twice — with
x264's default keyframe interval (up to 250 frames, plus one at every cut) and with a keyframe
every second (as phones write) — and times ``classify_video`` at one sample per second with
each sampling strategy, then ``landscape index`` (``run_index``: sampling in a sandboxed
worker, keyframe candidates, spill, timeline and rows in SQLite) on the same clip, plus the pure
model on pre-decoded tensors, all in one run.

    python benchmarks/bench_video.py [--seconds 120] [--backend onnx]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_index import _bundle, _pure_model


def _clip(path: Path, seconds: int, keyint: int | None) -> Path:
    from landscape.data.synth import CLASSES
    from landscape.data.synth_video import Scene, landscape_clip

    scenes = [Scene(CLASSES[i % len(CLASSES)], 12) for i in range(max(1, seconds // 12))]
    options = {"preset": "veryfast"} | ({"g": str(keyint)} if keyint else {})
    return landscape_clip(
        path, scenes, fps=25, size=(1920, 1080), codec="libx264", codec_options=options
    ).path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    args = parser.parse_args()
    from landscape.inference.predictor import Predictor
    from landscape.inference.video import classify_video

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle = _bundle(root, args.backend)
        predictor = Predictor.from_bundle(bundle, backend=args.backend)
        pure = _pure_model(bundle, args.backend, 256)
        print(f"pure model ({args.backend}): {pure:.1f} images/s", flush=True)
        for name, keyint in (("x264 default keyframes", None), ("keyframe every 1 s", 25)):
            started = time.perf_counter()
            clip = _clip(root / f"clip-{keyint}.mp4", args.seconds, keyint)
            made = time.perf_counter() - started
            print(f"{name}: {clip.stat().st_size / 2**20:.0f} MiB written in {made:.0f} s")
            for strategy in ("seek", "decode"):
                started = time.perf_counter()
                timeline = classify_video(predictor, clip, every=1.0, strategy=strategy)
                took = time.perf_counter() - started
                rate = timeline.samples / took
                print(
                    f"  predict {strategy:>6}: {timeline.duration / took:5.1f}x real time, "
                    f"{rate:5.1f} sampled frames/s = {rate / pure:.2f}x the pure model, "
                    f"{len(timeline.segments)} segments",
                    flush=True,
                )
            for strategy in ("seek", "decode"):
                _index(root, clip, predictor, strategy, pure)


def _index(root: Path, clip: Path, predictor: object, strategy: str, pure: float) -> None:
    """``run_index`` on a folder holding only ``clip``, into a fresh SQLite index."""
    import shutil

    from sqlalchemy import func, select

    from landscape.index.db import open_index, session_factory
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.index.schema import MediaMetadata, Prediction

    folder = root / f"index-{strategy}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "store").mkdir(parents=True)
    shutil.copy(clip, folder / "store" / clip.name)
    engine = open_index(f"sqlite:///{folder / 'index.db'}")
    options = IndexOptions(workers=2, video_strategy=strategy)  # type: ignore[arg-type]
    started = time.perf_counter()
    run_index(engine, [folder / "store"], predictor=predictor, options=options)
    took = time.perf_counter() - started
    with session_factory(engine)() as session:
        duration = float(session.scalar(select(MediaMetadata.duration)) or 0)
        segments = int(session.scalar(select(func.count()).where(Prediction.segment > 0)) or 0)
    samples = duration  # one a second, plus a few at cuts
    print(
        f"  index   {strategy:>6}: {duration / took:5.1f}x real time, "
        f"~{samples / took:5.1f} sampled frames/s = {samples / took / pure:.2f}x the pure model, "
        f"{segments} segments",
        flush=True,
    )


if __name__ == "__main__":
    main()
