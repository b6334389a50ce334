"""Video facts from real clips written with PyAV: containers, codecs, tags, rotation, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import inspect

from landscape.data.synth_video import Scene, landscape_clip, write_clip
from landscape.errors import UserError, VideoDecodeError
from landscape.index.extract_video import VideoFacts, extract_video, parse_iso6709
from landscape.index.schema import MediaMetadata

WIDTH, HEIGHT, FRAMES = 96, 64, 10


def _frames(count: int = FRAMES) -> list[np.ndarray]:
    """Frames that differ from one another (a flat clip would compress to nothing)."""
    ramp = np.linspace(0, 255, WIDTH, dtype=np.uint8)
    return [
        np.stack([np.roll(ramp, 7 * i)[None, :].repeat(HEIGHT, 0)] * 3, axis=-1)
        for i in range(count)
    ]


def _clip(path: Path, **options: object) -> Path:
    return write_clip(path, _frames(), fps=10, **options)  # type: ignore[arg-type]


def _error(path: Path) -> str:
    """The one-line message ``extract_video`` raises for ``path``."""
    with pytest.raises(VideoDecodeError) as caught:
        extract_video(path)
    message = str(caught.value)
    assert isinstance(caught.value, UserError)
    assert "\n" not in message and str(path) in message
    assert caught.value.fix
    return message


# --------------------------------------------------------------------------------------------------
# Containers and codecs.


def test_an_mp4_from_a_phone_gives_its_position_time_device_and_stream(tmp_path: Path) -> None:
    clip = landscape_clip(
        tmp_path / "walk.mp4",
        [Scene("coast", 1.0), Scene("forest", 1.0)],
        fps=5,
        size=(160, 96),
        metadata={
            "location": "+48.8577+002.2950+035.000/",
            "creation_time": "2024-05-01T10:00:00Z",
        },
    )
    facts = extract_video(clip.path)
    assert (facts.width, facts.height) == (160, 96)
    assert facts.format == "MP4"
    assert facts.video_codec == "h264" and facts.video_profile == "High"
    assert facts.duration == pytest.approx(clip.duration, abs=0.05)
    assert facts.fps == pytest.approx(5) and facts.fps_real == pytest.approx(5)
    assert facts.variable_frame_rate is False
    assert facts.frame_count == 10
    assert facts.rotation == 0
    assert facts.bit_rate is not None and facts.bit_rate > 0
    assert facts.audio_codec is None
    assert facts.captured_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert facts.latitude == pytest.approx(48.8577)
    assert facts.longitude == pytest.approx(2.2950)
    assert facts.altitude == pytest.approx(35.0)
    assert facts.tags["location"].startswith("+48.8577+002.2950")  # the raw tags are kept
    assert facts.tags["video:handler_name"] == "VideoHandler"

    row = facts.to_dict()
    assert row["captured_at"] == datetime(2024, 5, 1, 10, 0)  # naive wall clock, UTC here
    assert row["captured_offset"] == 0
    assert row["exif"] == facts.tags and "tags" not in row
    assert row["lens"] is None and row["iso"] is None
    json.dumps(row["exif"])


def test_a_mov_with_apple_tags_gives_local_time_and_a_southern_western_position(
    tmp_path: Path,
) -> None:
    # use_metadata_tags makes FFmpeg write the keys as given (mdta), as an iPhone does.
    path = _clip(
        tmp_path / "IMG_0001.MOV",
        metadata={
            "com.apple.quicktime.location.ISO6709": "-33.8688-070.6693-012.5/",
            "com.apple.quicktime.make": "Apple",
            "com.apple.quicktime.model": "iPhone 15",
            "com.apple.quicktime.creationdate": "2024-05-01T12:00:00+0200",
            "creation_time": "2024-05-01T10:00:05Z",
        },
        container_options={"movflags": "use_metadata_tags"},
    )
    facts = extract_video(path)
    # FFmpeg really wrote the Apple keys: the facts come from them, not from a fallback.
    assert facts.tags["com.apple.quicktime.location.ISO6709"] == "-33.8688-070.6693-012.5/"
    assert facts.format == "MOV"
    assert (facts.camera_make, facts.camera_model) == ("Apple", "iPhone 15")
    assert facts.latitude == pytest.approx(-33.8688)
    assert facts.longitude == pytest.approx(-70.6693)
    assert facts.altitude == pytest.approx(-12.5)
    # The Apple date wins over creation_time: it is the local time, with its offset.
    assert facts.captured_at == datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    row = facts.to_dict()
    assert (row["captured_at"], row["captured_offset"]) == (datetime(2024, 5, 1, 12, 0), 120)


def test_an_android_video_names_its_device(tmp_path: Path) -> None:
    path = _clip(
        tmp_path / "VID_0001.mp4",
        metadata={"com.android.manufacturer": "Google", "com.android.model": "Pixel 8"},
        container_options={"movflags": "use_metadata_tags"},
    )
    facts = extract_video(path)
    assert (facts.camera_make, facts.camera_model) == ("Google", "Pixel 8")


@pytest.mark.parametrize(
    ("name", "codec", "fmt", "video_codec", "frame_count"),
    [
        ("clip.mkv", "libx264", "MKV", "h264", None),  # Matroska declares no frame count
        ("clip.webm", "libvpx-vp9", "WebM", "vp9", None),
        ("clip.avi", "mpeg4", "AVI", "mpeg4", FRAMES),
        ("clip.ts", "libx264", "MPEG-TS", "h264", None),
    ],
)
def test_every_container_gives_its_format_codec_duration_and_rate(
    tmp_path: Path,
    name: str,
    codec: str,
    fmt: str,
    video_codec: str,
    frame_count: int | None,
) -> None:
    path = write_clip(tmp_path / name, _frames(), fps=10, codec=codec)
    facts = extract_video(path)
    assert facts.format == fmt
    assert facts.video_codec == video_codec
    assert (facts.width, facts.height) == (WIDTH, HEIGHT)
    assert facts.duration == pytest.approx(1.0, abs=0.15)
    assert facts.fps == pytest.approx(10) and facts.variable_frame_rate is False
    assert facts.frame_count == frame_count
    assert facts.bit_rate is not None and facts.bit_rate > 0
    json.dumps(facts.tags)


def test_matroska_creation_time_is_the_capture_time(tmp_path: Path) -> None:
    path = _clip(tmp_path / "clip.mkv", metadata={"creation_time": "2023-12-31T23:59:58Z"})
    assert extract_video(path).captured_at == datetime(2023, 12, 31, 23, 59, 58, tzinfo=UTC)


def test_a_variable_frame_rate_clip_has_an_average_below_its_real_rate(tmp_path: Path) -> None:
    # Frames 50 ms apart with pauses of 300-400 ms between: 20 fps real, ~9 fps on average.
    stamps = [0.0, 0.05, 0.1, 0.5, 0.55, 0.6, 0.9, 0.95, 1.0, 1.05]
    path = write_clip(tmp_path / "vfr.mp4", _frames(), timestamps=stamps)
    facts = extract_video(path)
    assert facts.variable_frame_rate is True
    assert facts.fps_real == pytest.approx(20)
    assert facts.fps is not None and facts.fps < 10
    assert facts.frame_count == FRAMES


def test_a_faststart_and_a_plain_mp4_give_the_same_facts(tmp_path: Path) -> None:
    plain = _clip(tmp_path / "plain.mp4")
    fast = _clip(tmp_path / "fast.mp4", container_options={"movflags": "faststart"})
    assert plain.read_bytes().find(b"moov") > plain.read_bytes().find(b"mdat")
    assert fast.read_bytes().find(b"moov") < fast.read_bytes().find(b"mdat")
    facts = [extract_video(p).to_dict() for p in (plain, fast)]
    for row in facts:
        row.pop("bit_rate")  # the index moved to the front: a few bytes of difference
    assert facts[0] == facts[1]


def test_the_raw_tags_are_json_text_cut_at_2048_characters(tmp_path: Path) -> None:
    path = _clip(tmp_path / "long.mp4", metadata={"comment": "x" * 5000})
    tags = extract_video(path).tags
    assert tags["comment"] == "x" * 2048
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    json.dumps(tags)


def test_an_unset_clock_and_a_position_without_a_fix_are_no_facts(tmp_path: Path) -> None:
    path = _clip(
        tmp_path / "noclock.mov",
        metadata={
            "com.apple.quicktime.creationdate": "1904-01-01T00:00:00Z",
            "com.apple.quicktime.location.ISO6709": "+00.0000+000.0000/",
        },
        container_options={"movflags": "use_metadata_tags"},
    )
    facts = extract_video(path)
    assert facts.captured_at is None
    assert (facts.latitude, facts.longitude) == (None, None)


# --------------------------------------------------------------------------------------------------
# Rotation.


def _rotated(path: Path, *, matrix: list[int] | None = None, ccw: float | None = None) -> Path:
    """A clip whose stream carries a display matrix, written as FFmpeg writes phone videos.

    ``write_clip`` has no option for it (FFmpeg 7+ ignores the old ``rotate`` tag on MP4), so
    the stream is set up here with PyAV's own ``set_display_matrix``/``set_display_rotation``.
    """
    with av.open(str(path), "w") as container:
        codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if matrix is not None:
            stream.set_display_matrix(matrix)
        if ccw is not None:
            stream.set_display_rotation(ccw)
        for pixels in _frames(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# The tkhd matrix of an iPhone held upright: a=0, b=1, c=-1, d=0 (16.16), w=1 (2.30). Players
# turn the picture 90° clockwise; ffprobe says "rotation of -90.00 degrees".
_PORTRAIT = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]


@pytest.mark.parametrize("suffix", ["mp4", "mov"])
def test_a_phone_portrait_matrix_is_a_90_degree_rotation_with_swapped_size(
    tmp_path: Path, suffix: str
) -> None:
    facts = extract_video(_rotated(tmp_path / f"portrait.{suffix}", matrix=_PORTRAIT))
    assert facts.rotation == 90
    assert (facts.width, facts.height) == (HEIGHT, WIDTH)


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "webm"])
@pytest.mark.parametrize(("ccw", "clockwise"), [(0, 0), (90, 270), (-90, 90), (180, 180)])
def test_the_display_matrix_rotation_is_read_from_mp4_and_matroska(
    tmp_path: Path, suffix: str, ccw: float, clockwise: int
) -> None:
    path = _rotated(tmp_path / f"rot.{suffix}", ccw=ccw)
    with av.open(str(path)) as container:  # FFmpeg's own reading, on the decoded frame
        decoded = next(container.decode(video=0)).rotation
    assert decoded % 360 == ccw % 360
    facts = extract_video(path)
    assert facts.rotation == clockwise
    swapped = clockwise in (90, 270)
    assert (facts.width, facts.height) == ((HEIGHT, WIDTH) if swapped else (WIDTH, HEIGHT))


def test_the_legacy_rotate_tag_is_read_where_the_container_keeps_it(tmp_path: Path) -> None:
    # Matroska stores any stream tag; MP4 no longer takes "rotate" in FFmpeg 7+ (the matrix
    # tests above cover it), so the fallback on the tag is checked on an MKV.
    path = _clip(tmp_path / "tagged.mkv", stream_metadata={"rotate": "90"})
    facts = extract_video(path)
    assert facts.tags.get("video:ROTATE") == "90"
    assert facts.rotation == 90 and (facts.width, facts.height) == (HEIGHT, WIDTH)


# --------------------------------------------------------------------------------------------------
# Files that are no usable video.


def test_an_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        tone = np.sin(np.arange(1024 * 20) / 10).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with av.open(str(path)) as container:  # really audio, really written
        assert container.streams.audio and not container.streams.video
    assert "has no video stream" in _error(path)


def test_a_video_stream_without_frames_has_no_video_frames(tmp_path: Path) -> None:
    def empty(name: str) -> Path:
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            container.start_encoding()  # the header, then no frame at all
        return path

    avi = empty("empty.avi")
    with av.open(str(avi)) as container:  # AVI keeps the empty stream
        assert container.streams.video[0].frames == 0
    assert "has no video frames" in _error(avi)
    # FFmpeg's MP4 muxer drops a track without samples: the file holds no stream at all.
    assert "has no video frames (it holds no streams at all)" in _error(empty("empty.mp4"))


def test_a_truncated_mp4_gives_its_facts_when_its_index_came_first(tmp_path: Path) -> None:
    fast = _clip(tmp_path / "fast.mp4", container_options={"movflags": "faststart"})
    data = fast.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    facts = extract_video(cut)
    assert (facts.width, facts.height, facts.video_codec) == (WIDTH, HEIGHT, "h264")
    assert facts.frame_count == FRAMES  # what the index declares; decoding finds the cut


def test_a_truncated_mp4_whose_index_was_at_the_end_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    data = _clip(tmp_path / "plain.mp4").read_bytes()
    moov = data.find(b"moov") - 4
    # Cut in the media data (FFmpeg: "invalid data") and in the index (FFmpeg: no streams).
    for name, keep in (("in_media.mp4", len(data) // 2), ("in_index.mp4", moov + 20)):
        cut = tmp_path / name
        cut.write_bytes(data[:keep])
        assert "its index (the moov box) is missing or cut off" in _error(cut)


def test_garbage_named_mp4_is_not_a_readable_video(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    message = _error(path)
    assert "not a readable video: invalid data" in message
    assert "Errno" not in message


def test_a_missing_or_empty_file_is_named(tmp_path: Path) -> None:
    assert "file not found" in _error(tmp_path / "gone.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty file" in _error(empty)


# --------------------------------------------------------------------------------------------------
# The row and ISO 6709.


def test_to_dict_gives_exactly_the_media_metadata_columns(tmp_path: Path) -> None:
    columns = {c.key for c in inspect(MediaMetadata).columns}
    expected = columns - {"file_id", "place_country", "place_region", "place_city"}
    assert set(extract_video(_clip(tmp_path / "a.mp4")).to_dict()) == expected
    assert set(VideoFacts(width=None, height=None).to_dict()) == expected


_PARIS = (48.8577, 2.2950)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+48.8577+002.2950/", (*_PARIS, None)),
        ("+48.8577+002.2950+035.000/", (*_PARIS, 35.0)),
        ("+48.8577+002.2950+035.000", (*_PARIS, 35.0)),  # no final "/"
        ("+48.8577+2.2950/", (*_PARIS, None)),  # Android's %+.4f: longitude unpadded
        ("+48.8577+002.2950+35.000000/", (*_PARIS, 35.0)),  # FFmpeg's own rewrite
        ("+48.8577+002.2950+035.000CRSWGS_84/", (*_PARIS, 35.0)),
        ("  +48.8577+002.2950/ ", (*_PARIS, None)),
        # The four hemispheres and both altitude signs.
        ("+40.7128-074.0060/", (40.7128, -74.0060, None)),  # north-west
        ("-33.8688+151.2093-012.5/", (-33.8688, 151.2093, -12.5)),  # south-east, below sea
        ("-22.9068-043.1729+010/", (-22.9068, -43.1729, 10.0)),  # south-west
        ("+35.6762+139.6503/", (35.6762, 139.6503, None)),  # north-east
        # Degrees and minutes, degrees minutes and seconds.
        ("+4851.46+00217.70/", (48 + 51.46 / 60, 2 + 17.70 / 60, None)),
        ("-3352.128+15112.558/", (-(33 + 52.128 / 60), 151 + 12.558 / 60, None)),
        ("+485127.6+0021742.0/", (48 + 51 / 60 + 27.6 / 3600, 2 + 17 / 60 + 42 / 3600, None)),
        ("-335207.7-0701009.5-5/", (-33.868806, -70.169306, -5.0)),
        # Edges.
        ("+90.0000+180.0000/", (90.0, 180.0, None)),
        ("-90+000/", (-90.0, 0.0, None)),
    ],
)
def test_parse_iso6709(text: str, expected: tuple[float, float, float | None]) -> None:
    parsed = parse_iso6709(text)
    assert parsed is not None
    assert parsed[0] == pytest.approx(expected[0]) and parsed[1] == pytest.approx(expected[1])
    if expected[2] is None:
        assert parsed[2] is None
    else:
        assert parsed[2] == pytest.approx(expected[2])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/",
        "garbage",
        "48.8577+002.2950/",  # no sign on the latitude
        "+48.8577/",  # no longitude
        "+91.0000+002.2950/",  # latitude beyond the pole
        "+48.8577+180.5000/",  # longitude beyond the antimeridian
        "+4860.00+00217.70/",  # 60 minutes
        "+485160.0+0021742.0/",  # 60 seconds
        "+485.5+002.2950/",  # three digits of latitude is no form
        "+48.8577+0217.70/",  # nor four of longitude
        "+48.8577+002.2950/junk",
        None,
    ],
)
def test_parse_iso6709_refuses_what_is_no_position(text: str | None) -> None:
    assert parse_iso6709(text) is None
