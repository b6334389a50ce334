"""Video facts from real clips written with PyAV: containers, codecs, tags, rotation, errors."""

from __future__ import annotations

import json
import math
import os
import struct
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import inspect

from landscape.data.synth_video import Scene, landscape_clip, write_clip
from landscape.errors import UserError, VideoDecodeError
from landscape.index.extract_video import (
    VideoFacts,
    extract_video,
    parse_iso6709,
    probe_duration,
)
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
# Duration from the headers, without FFmpeg.

# 2.3 s, not the 1 s of the other clips: a duration read from the wrong field is unlikely to match.
PROBE_FRAMES = 23


@pytest.mark.parametrize(
    ("name", "codec", "options"),
    [
        ("clip.mp4", "libx264", {}),  # FFmpeg writes the index after the media by default
        ("fast.mp4", "libx264", {"movflags": "faststart"}),
        ("clip.mov", "libx264", {}),
        ("part2.mp4", "mpeg4", {}),
        ("clip.mkv", "libx264", {}),
        ("clip.webm", "libvpx-vp9", {}),
    ],
)
def test_probe_duration_agrees_with_ffmpeg(
    tmp_path: Path, name: str, codec: str, options: dict[str, str]
) -> None:
    path = write_clip(
        tmp_path / name, _frames(PROBE_FRAMES), fps=10, codec=codec, container_options=options
    )
    data = path.read_bytes()
    if name == "clip.mp4":  # really the camera's layout, the index at the end
        assert data.find(b"moov") > data.find(b"mdat") > 0
    probed = probe_duration(path)
    expected = extract_video(path).duration
    assert probed is not None and expected is not None
    assert probed == pytest.approx(expected, abs=0.05)
    assert probed == pytest.approx(PROBE_FRAMES / 10, abs=0.15)
    assert probe_duration(str(path)) == probed  # a str path too


@pytest.mark.parametrize(("name", "codec"), [("clip.avi", "mpeg4"), ("clip.ts", "libx264")])
def test_probe_duration_knows_no_other_container(tmp_path: Path, name: str, codec: str) -> None:
    path = write_clip(tmp_path / name, _frames(), fps=10, codec=codec)
    assert extract_video(path).duration == pytest.approx(1.0, abs=0.15)  # a real video
    assert probe_duration(path) is None


def test_probe_duration_of_no_video_file_is_none(tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert probe_duration(noise) is None
    assert probe_duration(empty) is None
    assert probe_duration(tmp_path / "gone.mp4") is None
    assert probe_duration(tmp_path) is None  # a folder
    assert probe_duration("bad\0name.mp4") is None  # ValueError from the OS layer


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_probe_duration_does_not_wait_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert probe_duration(fifo) is None  # opening it for reading would wait for a writer
    assert time.monotonic() - started < 1


def test_probe_duration_of_cut_or_corrupted_real_files_never_raises(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name in ("clip.mp4", "fast.mp4", "clip.mkv"):
        options = {"movflags": "faststart"} if name == "fast.mp4" else {}
        data = _clip(tmp_path / name, container_options=options).read_bytes()
        damaged = tmp_path / f"damaged-{name}"
        for keep in range(0, len(data), 97):
            damaged.write_bytes(data[:keep])
            seconds = probe_duration(damaged)
            assert seconds is None or (math.isfinite(seconds) and seconds > 0)
        for _ in range(100):
            noisy = bytearray(data)
            spots = rng.integers(0, len(data), 8)
            noisy[spots[0] : spots[0] + 8] = rng.integers(0, 256, 8, np.uint8).tobytes()
            for spot in spots[1:]:
                noisy[spot] = int(rng.integers(0, 256))
            damaged.write_bytes(bytes(noisy))
            seconds = probe_duration(damaged)
            assert seconds is None or (math.isfinite(seconds) and seconds > 0)


# Hand-made ISO base media files: only the boxes the reader looks at.


def _box(kind: bytes, body: bytes = b"", *, size: int | None = None) -> bytes:
    return struct.pack(">I4s", 8 + len(body) if size is None else size, kind) + body


_FTYP = _box(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41")
# What follows the times in an mvhd (rate, volume, matrix…): not read for the duration.
_MVHD_REST = bytes(80)


def _mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    times = (
        struct.pack(">IIII", 1, 2, timescale, duration)
        if version == 0
        else struct.pack(">QQIQ", 1, 2, timescale, duration)
    )
    return _box(b"mvhd", bytes([version, 0, 0, 0]) + times + _MVHD_REST)


def _mp4(tmp_path: Path, *boxes: bytes) -> Path:
    path = tmp_path / "made.mp4"
    path.write_bytes(_FTYP + b"".join(boxes))
    return path


def test_probe_duration_reads_a_version_0_and_a_64_bit_version_1_mvhd(tmp_path: Path) -> None:
    assert probe_duration(_mp4(tmp_path, _box(b"moov", _mvhd(600, 1500)))) == 2.5
    # Five billion ticks: more than 32 bits hold, as a long recording at a fine timescale.
    v1 = _mvhd(1000, 5_000_000_000, version=1)
    assert probe_duration(_mp4(tmp_path, _box(b"moov", v1))) == 5_000_000.0
    # The mvhd need not be the moov's first box.
    other = _box(b"udta", b"\0" * 20)
    assert probe_duration(_mp4(tmp_path, _box(b"moov", other + _mvhd(90000, 45000)))) == 0.5


@pytest.mark.parametrize(
    "mvhd",
    [
        _mvhd(0, 1500),  # no timescale: a division by zero
        _mvhd(0, 1500, version=1),
        _mvhd(600, 0xFFFF_FFFF),  # all ones: unknown
        _mvhd(600, 0xFFFF_FFFF_FFFF_FFFF, version=1),
        _mvhd(600, 0),  # a fragmented MP4 keeps its duration in the fragments
        _mvhd(600, 1500, version=2),  # no such version
        _mvhd(600, 1500)[:20],  # cut short inside the times
        _mvhd(1000, 5_000_000_000, version=1)[:36],
        _box(b"mvhd"),
    ],
)
def test_probe_duration_of_an_unusable_mvhd_is_none(tmp_path: Path, mvhd: bytes) -> None:
    assert probe_duration(_mp4(tmp_path, _box(b"moov", mvhd))) is None


def test_probe_duration_finds_the_moov_after_a_64_bit_mdat(tmp_path: Path) -> None:
    media = b"\x55" * 1000
    largesize = struct.pack(">Q", 16 + len(media))
    mdat = _box(b"mdat", largesize + media, size=1)
    assert probe_duration(_mp4(tmp_path, mdat, _box(b"moov", _mvhd(600, 1500)))) == 2.5


def test_probe_duration_of_a_box_running_to_the_end_of_the_file(tmp_path: Path) -> None:
    # Size 0 is "to the end of the file": a last moov so written is read...
    assert probe_duration(_mp4(tmp_path, _box(b"moov", _mvhd(600, 1500), size=0))) == 2.5
    # ...and a moov after a size-0 mdat is media data, not an index.
    mdat = _box(b"mdat", b"\x55" * 100, size=0)
    assert probe_duration(_mp4(tmp_path, mdat, _box(b"moov", _mvhd(600, 1500)))) is None


@pytest.mark.parametrize(
    "liar",
    [
        _box(b"mdat", b"\x55" * 100, size=0xFFFF_FFFF),  # 4 GiB in a 200-byte file
        _box(b"mdat", struct.pack(">Q", 0xFFFF_FFFF_FFFF_FFFF) + b"\x55" * 100, size=1),
        _box(b"mdat", struct.pack(">Q", 1 << 63) + b"\x55" * 100, size=1),
        _box(b"mdat", struct.pack(">Q", 3) + b"\x55" * 100, size=1),  # smaller than its header
        _box(b"free", size=4),  # smaller than its header
        _box(b"free", size=1),  # a 64-bit size that is not there
        _box(b"free") * 100_000,  # more boxes than are ever looked at
    ],
)
def test_probe_duration_of_a_lying_box_size_is_none_at_once(tmp_path: Path, liar: bytes) -> None:
    path = _mp4(tmp_path, liar, _box(b"moov", _mvhd(600, 1500)))
    started = time.monotonic()
    assert probe_duration(path) is None
    assert time.monotonic() - started < 1


def test_probe_duration_of_a_moov_claiming_more_than_the_file_reads_what_is_there(
    tmp_path: Path,
) -> None:
    moov = _box(b"moov", _mvhd(600, 1500), size=0xFFFF_FFFF)  # cut short after its mvhd
    started = time.monotonic()
    assert probe_duration(_mp4(tmp_path, moov, _box(b"trak", b"\0" * 8, size=1 << 31))) == 2.5
    assert time.monotonic() - started < 1


# Hand-made Matroska files: EBML elements with 8-byte sizes (any length is valid).

_UNKNOWN = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # all ones: a live stream's unknown size


def _element(ident: int, body: bytes = b"", *, size: bytes | None = None) -> bytes:
    head = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return head + (size if size is not None else (1 << 56 | len(body)).to_bytes(8, "big")) + body


_EBML_HEADER = _element(0x1A45DFA3, _element(0x4282, b"matroska"))
_CLUSTER = _element(0x1F43B675, _element(0xE7, b"\0") + b"\0" * 200, size=_UNKNOWN)


def _scale(nanoseconds: int) -> bytes:
    return _element(0x2AD7B1, nanoseconds.to_bytes(4, "big"))


def _duration(value: float, fmt: str = ">d") -> bytes:
    return _element(0x4489, struct.pack(fmt, value))


def _mkv(
    tmp_path: Path, info: bytes, *, segment_size: bytes | None = None, tail: bytes = b""
) -> Path:
    path = tmp_path / "made.mkv"
    segment = _element(0x18538067, info + tail, size=segment_size)
    path.write_bytes(_EBML_HEADER + segment)
    return path


@pytest.mark.parametrize("segment_size", [None, _UNKNOWN])
@pytest.mark.parametrize(
    ("info", "seconds"),
    [
        (_element(0x1549A966, _scale(1_000_000) + _duration(2500.0)), 2.5),
        (_element(0x1549A966, _duration(2500.0)), 2.5),  # the default scale: milliseconds
        (_element(0x1549A966, _duration(25000.0, ">f") + _scale(100_000)), 2.5),  # 32-bit float
        (_element(0x1549A966, _scale(1_000_000) + _duration(2500.0), size=_UNKNOWN), 2.5),
    ],
)
def test_probe_duration_reads_a_matroska_info(
    tmp_path: Path, info: bytes, seconds: float, segment_size: bytes | None
) -> None:
    # A Void and a SeekHead before the Info, a Cluster of unknown size after it.
    before = _element(0xEC, b"\0" * 10) + _element(0x114D9B74, b"\0" * 10)
    path = _mkv(tmp_path, before + info, segment_size=segment_size, tail=_CLUSTER)
    assert probe_duration(path) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "info",
    [
        _element(0x1549A966, _scale(1_000_000)),  # no Duration: a live recording's
        _element(0x1549A966, _scale(0) + _duration(2500.0)),
        _element(0x1549A966, _duration(-2500.0)),
        _element(0x1549A966, _duration(math.nan)),
        _element(0x1549A966, _duration(math.inf)),
        _element(0x1549A966, _element(0x4489, b"\0\0\0")),  # no float has 3 bytes
        _element(0x1549A966, _element(0x4489)),  # an empty float is 0
        _CLUSTER,  # the media with no Info before it
        b"\0" * 50,  # no element at all
    ],
)
def test_probe_duration_of_a_matroska_without_a_usable_duration_is_none(
    tmp_path: Path, info: bytes
) -> None:
    for segment_size in (None, _UNKNOWN):
        path = _mkv(tmp_path, info, segment_size=segment_size, tail=_CLUSTER)
        started = time.monotonic()
        assert probe_duration(path) is None
        assert time.monotonic() - started < 1


def test_probe_duration_of_a_matroska_with_lying_sizes_is_none_at_once(tmp_path: Path) -> None:
    voids = _element(0xEC) * 100_000  # more elements than are ever looked at
    info = _element(0x1549A966, _duration(2500.0))
    huge = (1 << 56 | (1 << 56) - 2).to_bytes(8, "big")  # 2**56 bytes in a small file
    for path in (
        _mkv(tmp_path, voids + info),
        _mkv(tmp_path, _element(0xEC, size=huge) + info),
        _mkv(tmp_path, info, segment_size=b"\x00"),  # no vint starts with a zero byte
    ):
        started = time.monotonic()
        assert probe_duration(path) is None
        assert time.monotonic() - started < 1


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
