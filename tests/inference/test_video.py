"""Video timelines on real clips written with PyAV: segments, boundaries, bad files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from landscape.data.synth_video import Scene, landscape_clip, write_clip
from landscape.inference import Predictor
from landscape.inference.video import (
    VideoError,
    classify_video,
    format_time,
    sample_frames,
    smooth_labels,
)
from tests.conftest import CliResult, fit_scene_head


@pytest.fixture(scope="module")
def predictor(scene_run: Path) -> Predictor:
    return Predictor.from_bundle(scene_run / "bundle")


@pytest.mark.parametrize(
    ("name", "codec"),
    [("hevc.mp4", "libx265"), ("vp9.webm", "libvpx-vp9"), ("mpeg4.avi", "mpeg4")],
)
def test_every_installed_codec_gives_the_same_timeline(
    predictor: Predictor, tmp_path: Path, name: str, codec: str
) -> None:
    # PyAV's wheels bundle an FFmpeg with these encoders and decoders (HEVC included).
    truth = landscape_clip(
        tmp_path / name, [Scene("coast", 5), Scene("desert", 4.5)], fps=10, codec=codec, seed=2
    )
    timeline = classify_video(predictor, truth.path)
    assert [s.label for s in timeline.segments] == ["coast", "desert"]
    assert abs(timeline.segments[0].end - 5.0) <= 1.0 and timeline.broken is None


@pytest.mark.parametrize("strategy", ["seek", "decode"])
def test_two_scenes_make_two_segments_with_the_boundary_within_one_step(
    predictor: Predictor, tmp_path: Path, strategy: str
) -> None:
    truth = landscape_clip(
        tmp_path / "pan.mp4", [Scene("coast", 5), Scene("desert", 4.5)], fps=10, seed=2
    )
    timeline = classify_video(predictor, truth.path, every=1.0, strategy=strategy)  # type: ignore[arg-type]
    assert [s.label for s in timeline.segments] == ["coast", "desert"]
    first, second = timeline.segments
    assert abs(first.end - 5.0) <= 1.0 and first.end == second.start
    assert first.start == 0.0 and second.end == pytest.approx(truth.duration, abs=0.11)
    assert timeline.dominant == "coast" and timeline.dominant_share == pytest.approx(
        5 / 9.5, abs=0.12
    )
    assert timeline.samples >= 10 and all(s.embedding is not None for s in timeline.segments)
    assert first.start <= first.keyframe_time < first.end
    as_dict = timeline.to_dict()
    assert as_dict["segments"][1]["label"] == "desert" and as_dict["model_id"] == predictor.model_id


def test_a_cut_between_samples_is_found_and_placed_exactly(
    predictor: Predictor, tmp_path: Path
) -> None:
    """Sampling every 2 s, the cut at 3.0 s falls between samples: the first frame after it is
    classified too, and the boundary is that frame's time, not a midpoint."""
    truth = landscape_clip(
        tmp_path / "cut.mp4", [Scene("glacier", 3), Scene("forest", 5)], fps=10, seed=4
    )
    timeline = classify_video(predictor, truth.path, every=2.0, strategy="decode", min_segment=1.0)
    assert [s.label for s in timeline.segments] == ["glacier", "forest"]
    assert timeline.cuts >= 1 and timeline.segments[0].end == pytest.approx(3.0, abs=0.11)


def test_keyframes_are_kept_when_asked(predictor: Predictor, tmp_path: Path) -> None:
    truth = landscape_clip(tmp_path / "k.mp4", [Scene("mountain", 3)], fps=5, seed=1)
    timeline = classify_video(predictor, truth.path, keep_keyframes=True)
    [segment] = timeline.segments
    assert segment.keyframe is not None and max(segment.keyframe.size) <= 320
    assert classify_video(predictor, truth.path).segments[0].keyframe is None


def test_sampling_every_half_second_doubles_the_samples(tmp_path: Path) -> None:
    truth = landscape_clip(tmp_path / "s.mp4", [Scene("coast", 4)], fps=10)
    one = [f.time for f in sample_frames(truth.path, every=1.0)]
    half = [f.time for f in sample_frames(truth.path, every=0.5)]
    assert one == pytest.approx([0, 1, 2, 3]) and half == pytest.approx(np.arange(0, 4, 0.5))
    seek = [f.time for f in sample_frames(truth.path, every=1.0, strategy="seek")]
    decode = [f.time for f in sample_frames(truth.path, every=1.0, strategy="decode")]
    assert seek == decode


def test_viterbi_ignores_a_flicker_and_follows_a_real_change() -> None:
    probs = np.array([[0.9, 0.1]] * 4 + [[0.3, 0.7]] + [[0.9, 0.1]] * 3 + [[0.05, 0.95]] * 4)
    logp = np.log(probs)
    assert smooth_labels(logp, 2.0).tolist() == [0] * 8 + [1] * 4  # the single 0.7 is a flicker
    assert smooth_labels(logp, 0.0).tolist() == probs.argmax(1).tolist()  # no cost: argmax
    assert smooth_labels(np.zeros((0, 3)), 1.0).tolist() == []


def test_short_segments_are_absorbed_and_unknown_applies_per_segment(
    predictor: Predictor, tmp_path: Path
) -> None:
    truth = landscape_clip(
        tmp_path / "blip.mp4",
        [Scene("forest", 4), Scene("desert", 1), Scene("forest", 4)],
        fps=10,
        seed=5,
    )
    merged = classify_video(predictor, truth.path, min_segment=2.0, switch_cost=0.5)
    assert [s.label for s in merged.segments] == ["forest"]
    assert merged.segments[0].end == pytest.approx(truth.duration, abs=0.11)
    predictor.unknown_threshold = 0.9999
    try:
        doubtful = classify_video(predictor, truth.path)
    finally:
        predictor.unknown_threshold = None
    assert all(s.is_unknown for s in doubtful.segments)


def test_format_time() -> None:
    assert [format_time(t) for t in (0, 4.4, 65, 3725)] == ["00:00", "00:04", "01:05", "1:02:05"]


def test_files_with_nothing_to_classify_are_one_line_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video " * 100)
    with pytest.raises(VideoError, match=r"garbage\.mp4: not a readable video"):
        list(sample_frames(garbage))
    audio = tmp_path / "voice.m4a"
    with av.open(str(audio), mode="w") as container:
        stream = container.add_stream("aac", rate=22050)
        samples = (np.sin(np.arange(22050) / 10) * 0.2).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 22050
        for packet in [*stream.encode(frame), *stream.encode()]:  # type: ignore[union-attr]
            container.mux(packet)
    with pytest.raises(VideoError, match="has no video stream"):
        list(sample_frames(audio))
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), mode="w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height = 64, 64  # type: ignore[union-attr]
    with pytest.raises(VideoError, match=r"has no video frames|not a readable video"):
        list(sample_frames(empty))


@pytest.mark.parametrize(
    ("suffix", "options", "strategy"),
    [
        (".mkv", {}, "decode"),
        (".mkv", {}, "seek"),
        (".mp4", {"movflags": "faststart"}, "decode"),
        (".mp4", {"movflags": "faststart"}, "seek"),
    ],
)
def test_a_truncated_clip_gives_the_timeline_of_what_decodes_and_says_where_it_stops(
    predictor: Predictor,
    tmp_path: Path,
    suffix: str,
    options: dict[str, str],
    strategy: str,
) -> None:
    # Where the cut lands, the demuxer either stops short of the length the header declares
    # ("frames end at …") or the decoder reads missing bytes (FFmpeg's "Invalid data …").
    from landscape.data.video_frames import FrameSampler

    truth = landscape_clip(
        tmp_path / f"whole{suffix}",
        [Scene("coast", 4), Scene("glacier", 4)],
        fps=10,
        seed=6,
        container_options=options,
    )
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(truth.path.read_bytes()[: truth.path.stat().st_size * 2 // 3])
    sampler = FrameSampler(cut, strategy=strategy)  # type: ignore[arg-type]
    times = [sample.time for sample in sampler]
    assert sampler.broken is not None
    assert "frames end at" in sampler.broken or "Invalid data" in sampler.broken
    assert sampler.broken_at is not None and times[-1] <= sampler.broken_at < truth.duration - 1
    whole = FrameSampler(truth.path)
    assert len(list(whole)) == 8 and whole.broken is None  # the uncut file is not "broken"

    timeline = classify_video(predictor, cut, strategy=strategy)  # type: ignore[arg-type]
    assert timeline.segments[0].label == "coast" and timeline.samples >= 4
    assert timeline.broken == sampler.broken
    # The timeline spans what decoded, not the 8 s the header declares.
    assert timeline.segments[-1].end == timeline.duration == sampler.broken_at


def test_an_mpeg_ts_clip_is_sampled_from_its_first_frame_whatever_the_strategy(
    tmp_path: Path,
) -> None:
    # MPEG-TS demuxers seek by bytes and land past the target: sampling decodes in order.
    truth = landscape_clip(tmp_path / "pass.ts", [Scene("coast", 4), Scene("forest", 4)], seed=1)
    for strategy in ("seek", "decode"):
        times = [round(s.time, 2) for s in sample_frames(truth.path, strategy=strategy)]  # type: ignore[arg-type]
        assert times[:5] == [0.0, 1.0, 2.0, 3.0, 4.0] and len(times) == 8


def test_video_names_and_declared_durations(tmp_path: Path) -> None:
    from landscape.data.video_frames import is_video_path, video_duration
    from landscape.inference.video import covered_duration

    assert is_video_path("a/B.MOV") and is_video_path(Path("x.m2ts"))
    assert not is_video_path("photo.jpg") and not is_video_path("noext")
    truth = landscape_clip(tmp_path / "c.mp4", [Scene("coast", 3)], fps=10, seed=1)
    assert video_duration(truth.path) == pytest.approx(3.0, abs=0.11)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    assert video_duration(tmp_path / "junk.mp4") is None
    assert covered_duration(10.0, 9.0, 1.0, None) == 10.0
    assert covered_duration(10.0, 4.0, 1.0, 4.6) == 4.6  # a break: up to the last decoded frame
    assert covered_duration(3.0, 4.0, 1.0, 4.6) == 3.0  # never past what the file declares
    assert covered_duration(None, 4.0, 0.5, None) == 4.5  # nothing declared


def test_variable_frame_rate_clip_is_sampled_by_time(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.2, 1.3, 1.4, 2.05, 2.9, 3.6]
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(len(times))]
    path = write_clip(tmp_path / "vfr.mp4", frames, timestamps=times)
    sampled = [round(f.time, 2) for f in sample_frames(path, every=1.0, scene_cuts=False)]
    assert sampled == [0.0, 1.3, 2.05, 3.6]


def test_predict_prints_a_timeline_for_a_video_and_labels_for_images(
    run_cli: Callable[..., CliResult], scene_run: Path, tmp_path: Path, synth_small: Path
) -> None:
    folder = tmp_path / "media"
    truth = landscape_clip(
        folder / "flight.mp4", [Scene("coast", 5), Scene("desert", 4.5)], fps=10, seed=2
    )
    (folder / "photo.jpg").write_bytes(next((synth_small / "coast").glob("*.jpg")).read_bytes())
    (folder / "broken.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"\x00" * 50)
    bundle = scene_run / "bundle"
    human = run_cli("predict", bundle, truth.path, "--every", "1")
    assert human.code == 0, human.err
    assert "flight.mp4: coast (dominant, 53% of 00:10)" in human.out
    assert "00:00–00:05  coast" in human.out and "00:05–00:10  desert" in human.out
    result = run_cli("predict", bundle, folder, "--json")
    assert result.code == 0, result.err
    rows = {Path(r["path"]).name: r for r in json.loads(result.out)}
    video = rows["flight.mp4"]
    assert video["dominant"] == "coast" and video["duration"] == pytest.approx(9.5, abs=0.11)
    assert [s["label"] for s in video["segments"]] == ["coast", "desert"]
    assert rows["photo.jpg"]["label"] and "error" in rows["broken.mov"]
    assert "broken.mov" in rows["broken.mov"]["error"]


def test_cut_thumbnails_read_the_luma_plane_or_convert() -> None:
    """Planar YUV frames are sampled straight from their luma plane; other formats are
    converted. Both see the same picture (a smooth gradient: point samples ≈ averages)."""
    from landscape.data.video_frames import _thumb

    x = np.linspace(0, 255, 320)[None, :, None]
    y = np.linspace(0, 120, 180)[:, None, None]
    rgb = np.broadcast_to(x * 0.8 + y * 0.2, (180, 320, 3)).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    planar, converted = _thumb(frame.reformat(format="yuv420p")), _thumb(frame)
    assert planar.shape == converted.shape == (18, 32)
    assert float(np.abs(planar - converted).mean()) < 6


def test_build_timeline_from_scores_alone() -> None:
    """What the index does with frames its workers sampled: scores in, timeline out."""
    from landscape.inference.video import build_timeline

    times = np.arange(10, dtype=float)
    probs = np.array([[0.9, 0.1]] * 6 + [[0.1, 0.9]] * 4)
    cuts = np.zeros(10, dtype=bool)
    cuts[6] = True
    timeline = build_timeline(
        times,
        cuts,
        probs,
        np.ones((10, 4)),
        duration=10.0,
        classes=["sea", "sand"],
        unknown_threshold=None,
        model_id="m",
    )
    assert [(s.start, s.end, s.label) for s in timeline.segments] == [
        (0.0, 6.0, "sea"),
        (6.0, 10.0, "sand"),
    ]
    assert timeline.dominant == "sea" and timeline.cuts == 1 and timeline.model_id == "m"
    with pytest.raises(ValueError, match="at least one sample"):
        build_timeline(
            times[:0], cuts[:0], probs[:0], None, duration=1.0, classes=["a"],
            unknown_threshold=None, model_id="m",
        )  # fmt: skip


def test_a_clip_of_real_photos_gets_the_right_timeline(intel_dir: Path, tmp_path: Path) -> None:
    """intel-sample photos: a head trained on 60 per class, then a clip panning across three
    other photos of the sea, three of a forest and three of a street (2 s each)."""
    from PIL import Image

    from landscape.data.synth_video import Shot, picture_clip

    data = tmp_path / "data"
    held: dict[str, list[Path]] = {}
    for folder in sorted(p for p in intel_dir.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        (data / folder.name).mkdir(parents=True)
        for photo in photos[:60]:
            (data / folder.name / photo.name).symlink_to(photo)
        held[folder.name] = photos[-3:]
    predictor = Predictor.from_bundle(fit_scene_head(data, tmp_path / "run"))
    shots = [
        Shot(label, Image.open(photo), 2.0)
        for label in ("sea", "forest", "street")
        for photo in held[label]
    ]
    truth = picture_clip(tmp_path / "real.mp4", shots, fps=10, size=(240, 144))
    assert [label for _, _, label in truth.segments] == ["sea", "forest", "street"]
    timeline = classify_video(predictor, truth.path, every=1.0)
    assert [s.label for s in timeline.segments] == ["sea", "forest", "street"]
    for segment, (start, end, _) in zip(timeline.segments, truth.segments, strict=True):
        assert abs(segment.start - start) <= 1.0 and abs(segment.end - end) <= 1.0

    # `landscape index` stores the same timeline: sampled in a worker, scored here.
    import shutil

    from sqlalchemy import select

    from landscape.index.db import open_index, session_factory
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.index.schema import Prediction

    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(truth.path, store / "real.mp4")  # the index never follows symlinks
    engine = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    run_index(engine, [store], predictor=predictor, options=IndexOptions(workers=1))
    with session_factory(engine)() as session:
        rows = session.scalars(select(Prediction).order_by(Prediction.segment)).all()
        stored = [(r.label, r.segment_start, r.segment_end) for r in rows[1:]]
        assert rows[0].segment == 0 and rows[0].label == timeline.dominant
    assert stored == [
        (s.label, pytest.approx(s.start), pytest.approx(s.end)) for s in timeline.segments
    ]
