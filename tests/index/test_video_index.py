"""``landscape index`` on videos: timelines, keyframes, broken files, timeouts and crashes.

Real clips written with PyAV (:mod:`landscape.data.synth_video`) and the real scene model
(``scene_run``), so a segment's label and boundary are checked against what the clip shows.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine, func, select

from landscape.data.synth import render_landscape
from landscape.data.synth_video import Scene, landscape_clip, write_clip
from landscape.index.db import open_index, session_factory
from landscape.index.keyframes import keyframe_root
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.schema import Embedding, File, MediaMetadata, Prediction
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult
from tests.index.test_pipeline import _index_command, _rows_while_running

FAST = IndexOptions(workers=1, timeout=60, memory_mb=None, batch_size=8)
STEP = 1.0  # the default sampling step (IndexOptions.every)

# Scene pairs and seeds the scene model labels right at 320×180 (it is deterministic: fixed data,
# packaged weights, logistic regression), so a wrong label is the index's doing.
COAST_FOREST = ([Scene("coast", 4), Scene("forest", 5)], 3)
DESERT_GLACIER = ([Scene("desert", 5), Scene("glacier", 4)], 1)


@pytest.fixture(scope="module")
def predictor(scene_run: Path) -> Predictor:
    return Predictor.from_bundle(scene_run / "bundle")


@dataclass
class Indexed:
    """One file's rows after a run."""

    file: File
    media: MediaMetadata | None
    predictions: list[Prediction]  # by segment
    embeddings: int


def _indexed(engine: Engine, relative_path: str) -> Indexed:
    with session_factory(engine)(expire_on_commit=False) as s:
        row = s.scalar(select(File).where(File.relative_path == relative_path))
        assert row is not None, f"no row for {relative_path}"
        predictions = list(
            s.scalars(
                select(Prediction).where(Prediction.file_id == row.id).order_by(Prediction.segment)
            )
        )
        embeddings = s.scalar(
            select(func.count())
            .select_from(Embedding)
            .where(Embedding.prediction_id.in_([p.id for p in predictions]))
        )
        return Indexed(row, s.get(MediaMetadata, row.id), predictions, int(embeddings or 0))


def _photo(path: Path, label: str, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_landscape(label, np.random.default_rng(seed), 160).save(path, quality=90)
    return path


def _spills(root: Path) -> list[Path]:
    return sorted(root.glob(".spill-*")) if root.is_dir() else []


def _keyframe(root: Path, name: str | None) -> Image.Image:
    """The keyframe ``name`` under ``root``, opened (and checked to be a small JPEG)."""
    assert name is not None
    path = root / name
    assert path.is_file() and root.resolve() in path.resolve().parents, path
    image = Image.open(path)
    image.load()
    assert image.format == "JPEG" and max(image.size) <= 320
    return image


def _span(prediction: Prediction) -> tuple[float, float]:
    start, end = prediction.segment_start, prediction.segment_end
    assert start is not None and end is not None
    return start, end


def _check_timeline(indexed: Indexed, root: Path) -> list[Prediction]:
    """Segment 0 spans [0, end] with the label that covers the most time; segments 1..n are
    numbered without gaps, tile [0, end], and each has an embedding and a keyframe JPEG.
    Returns segments 1..n."""
    predictions = indexed.predictions
    assert [p.segment for p in predictions] == list(range(len(predictions)))
    whole, segments = predictions[0], predictions[1:]
    assert segments, "a video without a timeline"
    assert whole.segment_start == 0.0 and segments[0].segment_start == 0.0
    assert segments[-1].segment_end == pytest.approx(whole.segment_end)
    for before, after in pairwise(segments):
        assert _span(before)[1] == pytest.approx(_span(after)[0])
    covered: dict[str, float] = {}
    for p in segments:
        start, end = _span(p)
        assert end > start
        covered[p.label] = covered.get(p.label, 0.0) + end - start
    assert whole.label == max(covered, key=lambda label: covered[label])
    assert whole.keyframe in {p.keyframe for p in segments if p.label == whole.label}
    assert indexed.embeddings == len(predictions)
    for p in predictions:
        _keyframe(root, p.keyframe)
    return segments


def _one_line(error: str | None) -> str:
    assert error and "\n" not in error and "Traceback" not in error, error
    return error


# --------------------------------------------------------------------------------------------
# A clip in an archive of photos.


def test_a_video_gets_a_timeline_keyframes_and_embeddings_and_a_rerun_keeps_them(
    db_url: str, tmp_path: Path, predictor: Predictor
) -> None:
    root = tmp_path / "archive"
    scenes, seed = COAST_FOREST
    truth = landscape_clip(root / "2024" / "flight.mp4", scenes, fps=10, seed=seed)
    _photo(root / "2024" / "beach.jpg", "coast", 1)
    _photo(root / "dunes.jpg", "desert", 2)
    sqlite = db_url.startswith("sqlite")
    # SQLite keeps its keyframes beside the database; a PostgreSQL index is given a folder.
    options = FAST if sqlite else replace(FAST, keyframe_dir=tmp_path / "kf")
    kf = tmp_path / "index.keyframes" if sqlite else tmp_path / "kf"
    engine = open_index(db_url)
    if sqlite:
        assert keyframe_root(engine.url) == kf.resolve()

    first = run_index(engine, [root], predictor=predictor, options=options)
    assert dict(first.outcomes) == {"new": 3, "missing": 0}
    assert dict(first.media) == {"image": 2, "video": 1}
    video = _indexed(engine, "2024/flight.mp4")
    assert (video.file.status, video.file.media_type, video.file.error) == ("ok", "video", None)
    assert video.media is not None and video.media.video_codec == "h264"
    assert video.media.duration == pytest.approx(truth.duration, abs=0.11)
    assert (video.media.width, video.media.height) == truth.size

    segments = _check_timeline(video, kf)
    whole = video.predictions[0]
    assert [p.label for p in segments] == ["coast", "forest"]
    assert whole.label == "forest"  # 5 s of forest, 4 of coast
    assert whole.segment_end == pytest.approx(video.media.duration, abs=0.11)
    boundary = truth.segments[0][1]
    assert abs(_span(segments[0])[1] - boundary) <= STEP
    # Each keyframe shows its segment (the model labels the JPEG as the segment).
    pictures = [_keyframe(kf, p.keyframe).convert("RGB") for p in segments]
    assert [p.label for p in predictor.predict(pictures)] == ["coast", "forest"]
    assert _spills(kf) == []

    for name in ("2024/beach.jpg", "dunes.jpg"):
        photo = _indexed(engine, name)
        assert [(p.segment, p.keyframe, p.segment_start) for p in photo.predictions] == [
            (0, None, None)
        ]
        assert photo.embeddings == 1
    with session_factory(engine)() as s:
        predictions = {p.id: (p.created_at, p.keyframe) for p in s.scalars(select(Prediction))}
        assert len(predictions) == 2 + 3
        assert s.scalar(select(func.count()).select_from(Embedding)) == len(predictions)
    keyframes = sorted(p for p in kf.rglob("*") if p.is_file())
    assert len(keyframes) == 2  # one per segment; segment 0 shares the forest one
    stamps = {p: p.stat().st_mtime_ns for p in keyframes}

    second = run_index(engine, [root], predictor=predictor, options=options)
    assert dict(second.outcomes) == {"unchanged": 3, "missing": 0}
    assert second.media["video"] == 1
    with session_factory(engine)() as s:
        again = {p.id: (p.created_at, p.keyframe) for p in s.scalars(select(Prediction))}
    assert again == predictions
    assert {p: p.stat().st_mtime_ns for p in kf.rglob("*") if p.is_file()} == stamps
    assert _spills(kf) == []
    engine.dispose()


def test_a_changed_video_replaces_its_segments_and_deletes_its_old_keyframes(
    tmp_path: Path, predictor: Predictor
) -> None:
    root = tmp_path / "archive"
    clip = root / "trip.mp4"
    scenes, seed = COAST_FOREST
    landscape_clip(clip, scenes, fps=10, seed=seed)
    engine = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    kf = tmp_path / "index.keyframes"
    run_index(engine, [root], predictor=predictor, options=FAST)
    before = _indexed(engine, "trip.mp4")
    assert [p.label for p in before.predictions] == ["forest", "coast", "forest"]
    old = {p.keyframe for p in before.predictions}
    assert all((kf / name).is_file() for name in old if name)

    scenes, seed = DESERT_GLACIER
    truth = landscape_clip(clip, scenes, fps=10, seed=seed)
    mtime = before.file.mtime_ns + 5_000_000_000
    os.utime(clip, ns=(mtime, mtime))
    summary = run_index(engine, [root], predictor=predictor, options=FAST)
    assert summary.outcomes["changed"] == 1 and summary.labels == {"desert": 1}

    after = _indexed(engine, "trip.mp4")
    assert after.file.id == before.file.id and after.file.status == "ok"
    assert after.file.content_hash != before.file.content_hash
    segments = _check_timeline(after, kf)
    assert [p.label for p in after.predictions] == ["desert", "desert", "glacier"]
    assert abs(_span(segments[0])[1] - truth.segments[0][1]) <= STEP
    new = {p.keyframe for p in after.predictions}
    assert not new & old
    assert [name for name in old if name and (kf / name).exists()] == []
    assert sorted(p.relative_to(kf).as_posix() for p in kf.rglob("*.jpg")) == sorted(
        n for n in new if n
    )
    with session_factory(engine)() as s:
        # The replaced rows took their embeddings with them.
        assert s.scalar(select(func.count()).select_from(Prediction)) == 3
        assert s.scalar(select(func.count()).select_from(Embedding)) == 3
    engine.dispose()


def test_changing_one_of_two_identical_videos_keeps_the_other_ones_keyframes(
    tmp_path: Path, predictor: Predictor
) -> None:
    root = tmp_path / "archive"
    scenes, seed = COAST_FOREST
    original = landscape_clip(root / "a.mp4", scenes, fps=10, seed=seed).path
    (root / "copy.mp4").write_bytes(original.read_bytes())
    engine = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    kf = tmp_path / "index.keyframes"
    run_index(engine, [root], predictor=predictor, options=FAST)
    copy = _indexed(engine, "copy.mp4")
    assert {p.keyframe for p in copy.predictions} == {
        p.keyframe for p in _indexed(engine, "a.mp4").predictions
    }  # the two copies share their pictures, as the keyframes module says

    scenes, seed = DESERT_GLACIER
    landscape_clip(original, scenes, fps=10, seed=seed)
    os.utime(original, ns=(time.time_ns() + 5 * 10**9,) * 2)
    run_index(engine, [root], predictor=predictor, options=FAST)
    engine.dispose()
    missing = [p.keyframe for p in copy.predictions if not (kf / str(p.keyframe)).is_file()]
    assert missing == []


# --------------------------------------------------------------------------------------------
# Broken, odd and awkward videos.


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=22050)
        samples = (np.sin(np.arange(22050) / 10) * 0.2).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 22050
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def _no_frames(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()  # the header, then no frame at all
    return path


# A phone held upright: players turn the stored picture 90° clockwise (see test_extract_video).
_PORTRAIT = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]


def _phone_clip(path: Path, scene: Scene, seed: int) -> Path:
    """A portrait clip stored sideways with a display matrix, as phones film: the picture
    shows ``scene`` upright only once turned as the matrix says."""
    upright = landscape_clip(path.with_suffix(".upright.mkv"), [scene], size=(180, 320), seed=seed)
    with av.open(str(upright.path)) as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    upright.path.unlink()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.set_display_matrix(_PORTRAIT)
        for pixels in frames:
            sideways = np.ascontiguousarray(np.rot90(pixels), dtype=np.uint8)  # 90° to the left
            for packet in stream.encode(av.VideoFrame.from_ndarray(sideways, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _uhd_clip(path: Path) -> Path:
    """3840×2160, three frames in one second."""
    ramp = np.linspace(0, 255, 3840, dtype=np.uint8)[None, :, None]
    frames = [np.broadcast_to(np.roll(ramp, 64 * i, axis=1), (2160, 3840, 3)) for i in range(3)]
    return write_clip(path, [np.ascontiguousarray(f) for f in frames], fps=3)


def _cut(source: Path, target: Path, keep: int) -> Path:
    target.write_bytes(source.read_bytes()[:keep])
    return target


def _last_decodable(path: Path) -> float:
    """The time of the last frame FFmpeg decodes from ``path`` before it breaks."""
    last = -1.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start, unit = stream.start_time or 0, stream.time_base
        assert unit is not None
        try:
            for frame in container.decode(stream):
                if frame.pts is not None:
                    last = max(last, float((frame.pts - start) * unit))
        except av.error.FFmpegError:
            pass
    return last


def test_broken_and_odd_videos_each_get_a_row_and_never_stop_the_run(
    tmp_path: Path, predictor: Predictor
) -> None:
    root, spare = tmp_path / "archive", tmp_path / "whole"
    root.mkdir()
    scenes, seed = COAST_FOREST
    fast = landscape_clip(
        spare / "fast.mp4", scenes, seed=seed, container_options={"movflags": "faststart"}
    ).path
    _cut(fast, root / "cut_fast.mp4", fast.stat().st_size * 2 // 3)
    plain = landscape_clip(spare / "plain.mp4", [Scene("coast", 3)], seed=2).path
    data = plain.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat") > 0  # the index really comes last
    _cut(plain, root / "cut_plain.mp4", len(data) // 2)
    mkv = landscape_clip(spare / "whole.mkv", [Scene("glacier", 3), Scene("desert", 3)], seed=1)
    _cut(mkv.path, root / "cut.mkv", mkv.path.stat().st_size * 2 // 3)
    _audio_only(root / "voice.mp4")
    _audio_only(root / "voice.m4a")
    _no_frames(root / "empty.avi")
    _no_frames(root / "empty.mp4")
    (root / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000).tobytes())
    _phone_clip(root / "phone.mp4", Scene("coast", 3), seed=3)
    landscape_clip(root / "clip.ts", [Scene("forest", 3), Scene("desert", 3)], seed=1)
    landscape_clip(
        root / "clip.avi",
        [Scene("glacier", 3), Scene("desert", 3)],
        seed=1,
        codec="mpeg4",
        bit_rate=1_000_000,
    )
    _uhd_clip(root / "uhd.mp4")
    _photo(root / "photo.jpg", "forest", 4)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    engine = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    kf = tmp_path / "index.keyframes"
    summary = run_index(engine, [root], predictor=predictor, options=FAST)
    with session_factory(engine)() as s:
        assert sorted(s.scalars(select(File.relative_path))) == files
        assert s.scalar(select(func.count()).where(File.status == "quarantined")) == 0
    rows = {name: _indexed(engine, name) for name in files}
    errors = sorted(name for name, r in rows.items() if r.file.status == "error")
    assert errors == [
        "cut.mkv", "cut_fast.mp4", "cut_plain.mp4", "empty.avi", "empty.mp4", "voice.mp4",
    ]  # fmt: skip
    assert summary.outcomes["failed"] == len(errors)
    assert sorted(path for path, _ in summary.problems) == errors
    for name in errors:
        _one_line(rows[name].file.error)
    assert all(r.file.status == "ok" for name, r in rows.items() if name not in errors)

    # Broken part-way: the error says where, and the timeline of what decoded is kept.
    for name, first, duration in (("cut_fast.mp4", "coast", 9.0), ("cut.mkv", "glacier", 6.0)):
        row = rows[name]
        assert row.file.error is not None and row.file.error.startswith("decoding stops at "), (
            row.file.error
        )
        assert row.file.error.endswith("the timeline covers what decoded")
        segments = _check_timeline(row, kf)
        assert segments[0].label == first
        assert row.media is not None and row.media.duration == pytest.approx(duration, abs=0.11)
        reached = _last_decodable(root / name)
        assert 0 < reached < duration - 2 * STEP
        # Within one sampling step of the last frame that decodes (see the strict test below).
        assert _span(segments[-1])[1] <= reached + STEP + 1e-6
        assert _span(row.predictions[0])[1] < duration - 1.0

    # Nothing to classify: one line, no predictions.
    assert "moov" in str(rows["cut_plain.mp4"].file.error)
    assert "has no video stream" in str(rows["voice.mp4"].file.error)
    assert "no video frames" in str(rows["empty.avi"].file.error)
    assert "no video frames" in str(rows["empty.mp4"].file.error)
    for name in ("cut_plain.mp4", "voice.mp4", "empty.avi", "empty.mp4"):
        assert rows[name].predictions == [], name
        assert rows[name].file.media_type == "video" and rows[name].file.content_hash
    # Not videos at all, by their bytes: listed as other files, as an audio file is.
    for name in ("noise.mp4", "voice.m4a"):
        assert (rows[name].file.media_type, rows[name].predictions) == ("other", [])

    # Awkward but fine.
    phone = rows["phone.mp4"]
    assert phone.media is not None and phone.media.rotation == 90
    assert (phone.media.width, phone.media.height) == (180, 320)
    [keyframe] = {p.keyframe for p in _check_timeline(phone, kf)}
    picture = _keyframe(kf, keyframe)
    assert picture.height > picture.width  # sampled as shown: upright, portrait
    assert [p.label for p in phone.predictions] == ["coast", "coast"]
    for name, labels, codec in (
        ("clip.ts", ["forest", "desert"], "h264"),
        ("clip.avi", ["glacier", "desert"], "mpeg4"),
    ):
        row = rows[name]
        assert row.media is not None and row.media.video_codec == codec
        assert [p.label for p in _check_timeline(row, kf)] == labels, name
        assert row.predictions[0].segment_end == pytest.approx(6.0, abs=0.11)
    uhd = rows["uhd.mp4"]
    assert uhd.media is not None and (uhd.media.width, uhd.media.height) == (3840, 2160)
    assert len(_check_timeline(uhd, kf)) == 1
    assert uhd.predictions[0].segment_end == pytest.approx(1.0, abs=0.11)
    assert [p.segment for p in rows["photo.jpg"].predictions] == [0]
    assert _spills(kf) == []
    engine.dispose()


def test_a_truncated_video_timeline_ends_where_decoding_stopped(
    tmp_path: Path, predictor: Predictor
) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    # No B-frames, so packets are in time order: cut right before the frame at 2.6 s, the last
    # that decodes is at 2.5 s, half way between the samples at 2 s and 3 s.
    whole = landscape_clip(
        tmp_path / "whole.mp4",
        [Scene("coast", 6)],
        seed=3,
        container_options={"movflags": "faststart"},
        codec_options={"bf": "0"},
    ).path
    with av.open(str(whole)) as container:
        stream = container.streams.video[0]
        unit = stream.time_base
        assert unit is not None
        positions = {
            round(float(p.pts * unit), 2): p.pos
            for p in container.demux(stream)
            if p.pts is not None and p.pos is not None and p.pos >= 0
        }
    cut = _cut(whole, root / "cut.mp4", positions[2.6])
    assert _last_decodable(cut) == pytest.approx(2.5)
    engine = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    run_index(engine, [root], predictor=predictor, options=FAST)
    row = _indexed(engine, "cut.mp4")
    engine.dispose()
    assert row.file.status == "error" and "decoding stops at" in str(row.file.error)
    assert row.predictions, "the partial timeline is kept"
    # The frame at 2.5 s lasts 0.1 s: nothing after 2.6 s was seen.
    assert max(p.segment_end or 0 for p in row.predictions) <= 2.6 + 1e-6


# --------------------------------------------------------------------------------------------
# Timeouts scale with the duration.


def test_a_long_video_gets_a_timeout_scaled_by_its_duration(tmp_path: Path, tiny_run: Path) -> None:
    """A minute of video, every frame sampled (``every=0.1`` at 10 fps): 600 frames to decode,
    crop and thumbnail take a fresh worker 2–3.7 s on 2 cores (measured) — past a flat 1 s
    timeout, well within 1 s + 2 s per second of video. (The tiny model keeps scoring the 600
    frames cheap; the scene model would take 20–50 s.)"""
    root = tmp_path / "archive"
    labels = ["coast", "desert", "forest", "glacier", "mountain", "coast"]
    truth = landscape_clip(root / "long.mp4", [Scene(label, 10) for label in labels], seed=1)
    assert truth.duration == pytest.approx(60)
    tiny = Predictor.from_bundle(tiny_run / "bundle")
    base = replace(FAST, timeout=1, every=0.1)

    flat = open_index(f"sqlite:///{tmp_path / 'flat.db'}")
    options = replace(base, video_timeout_factor=0)
    summary = run_index(flat, [root], predictor=tiny, options=options)
    row = _indexed(flat, "long.mp4")
    flat.dispose()
    assert row.file.status == "quarantined" and row.predictions == []
    assert str(row.file.error).startswith("timeout: ")
    assert summary.outcomes["failed"] == 1
    assert _spills(tmp_path / "flat.keyframes") == []  # the killed worker's frames too

    scaled = open_index(f"sqlite:///{tmp_path / 'scaled.db'}")
    options = base
    assert options.video_timeout_factor == 2.0  # the default
    summary = run_index(scaled, [root], predictor=tiny, options=options)
    row = _indexed(scaled, "long.mp4")
    scaled.dispose()
    assert (row.file.status, row.file.error) == ("ok", None), row.file.error
    assert dict(summary.outcomes) == {"new": 1, "missing": 0}
    assert row.predictions[0].segment_end == pytest.approx(60, abs=0.11)
    assert len(row.predictions) >= 2 and row.embeddings == len(row.predictions)


# --------------------------------------------------------------------------------------------
# A crash mid-run, and the command line.


def test_kill_9_while_indexing_videos_then_rerun_gives_each_one_timeline(
    tmp_path: Path, scene_run: Path
) -> None:
    root = tmp_path / "archive"
    labels = ["coast", "desert", "forest", "glacier", "mountain"]
    for i in range(6):
        scenes = [Scene(labels[i % 5], 3), Scene(labels[(i + 2) % 5], 2 + i % 4)]
        landscape_clip(root / f"clip{i}.mp4", scenes, seed=i)
    db = tmp_path / "crash.db"
    kf = tmp_path / "crash.keyframes"
    args = _index_command(root, db, scene_run / "bundle")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        written = _rows_while_running(db, "predictions", proc, seconds=240)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert written
    assert _spills(kf), "a killed run leaves its spill folder"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        done = con.execute("SELECT count(DISTINCT file_id) FROM predictions").fetchone()[0]
        assert 0 < done < 6
        assert con.execute("SELECT state FROM scans").fetchall() == [("running",)]

    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["scan_id"] == 1 and summary["media"]["video"] == 6
    assert _spills(kf) == []
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT state FROM scans").fetchall() == [("finished",)]
        files = con.execute("SELECT id, relative_path, status FROM files").fetchall()
        assert sorted(path for _, path, _ in files) == [f"clip{i}.mp4" for i in range(6)]
        assert {status for _, _, status in files} == {"ok"}
        for file_id, path, _ in files:
            rows = con.execute(
                "SELECT segment, segment_start, segment_end, keyframe FROM predictions "
                "WHERE file_id = ? ORDER BY segment",
                (file_id,),
            ).fetchall()
            segments = [r[0] for r in rows]
            assert segments == list(range(len(rows))) and len(rows) >= 2, (path, rows)
            assert rows[1][1] == 0.0 and rows[-1][2] == pytest.approx(rows[0][2])
            for before, after in pairwise(rows[1:]):
                assert before[2] == pytest.approx(after[1]), (path, rows)
            assert all((kf / r[3]).is_file() for r in rows), path
        orphans = con.execute(
            "SELECT count(*) FROM predictions p LEFT JOIN embeddings e "
            "ON e.prediction_id = p.id WHERE e.prediction_id IS NULL"
        ).fetchone()[0]
        assert orphans == 0


def test_index_command_summarises_videos_and_its_json_parses(
    tmp_path: Path, scene_run: Path, run_cli: Callable[..., CliResult]
) -> None:
    root = tmp_path / "archive"
    scenes, seed = COAST_FOREST
    landscape_clip(root / "flight.mp4", scenes, fps=10, seed=seed)
    _photo(root / "dunes.jpg", "desert", 2)
    url = f"sqlite:///{tmp_path / 'index.db'}"
    bundle = scene_run / "bundle"
    args = ("index", root, "--db", url, "--model", bundle, "--workers", "1", "--no-progress")

    human = run_cli(*args)
    assert human.code == 0, human.err
    assert "media: image 1, video 1" in human.out
    assert "labels (this run):" in human.out and "forest 1" in human.out
    assert "problem" not in human.out

    again = run_cli(*args, "--json")
    assert again.code == 0, again.err
    summary = json.loads(again.out)
    assert summary["media"] == {"image": 1, "video": 1}
    assert summary["outcomes"] == {"unchanged": 2, "missing": 0}
    assert summary["problems"] == [] and summary["scan_id"] == 2
