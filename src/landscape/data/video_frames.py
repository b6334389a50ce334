"""Frames to classify from a video, read with PyAV: one every ``every`` seconds plus scene cuts.

Torch-free (the index's sandboxed workers sample videos with it; the network runs in the
main process), and the one place the project decodes video frames: ``landscape predict``
(:mod:`landscape.inference.video`) and ``landscape index`` sample alike.

**Sampling.** ``strategy="seek"`` (default) reads the keyframe positions from the container's
packets (no decoding), then decodes forward from the current position while the next sample is
before the next keyframe, and seeks only when a keyframe lies between: never more decoding than
reading everything, often much less (x264 puts a keyframe at every cut and at least every 10 s;
phones every second). ``"decode"`` decodes every frame in order; it is what containers that
cannot seek by time reliably get (MPEG program and transport streams, raw elementary streams),
whatever was asked. ``benchmarks/bench_video.py`` measures both.

**Scene cuts.** Every decoded frame (not only the sampled ones) is compared with the previous
one on a tiny grey thumbnail read straight from its luma plane; a jump opens a new shot, whose
first frame is sampled too, so a timeline boundary can land exactly on the cut.

**Broken files.** A file that breaks part-way (truncated, corrupt tail) yields what decoded
before the break; :class:`FrameSampler` then says where and why it stopped (``broken_at``,
``broken``), so callers can record the point instead of pretending the video ended there.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from landscape.errors import UserError

__all__ = [
    "VIDEO_SUFFIXES",
    "FrameSampler",
    "SampledFrame",
    "Strategy",
    "VideoError",
    "format_time",
    "is_video_path",
    "sample_frames",
    "video_duration",
]

Strategy = Literal["seek", "decode"]

# Mean absolute difference (0–255) between 32×18 grey thumbnails of consecutive decoded frames
# above which the second one starts a new shot. A pan moves a few levels; a cut, tens.
_CUT_THRESHOLD = 28.0
_THUMB = (32, 18)
_EPS = 1e-6
# FFmpeg demuxers that seek by byte position and land wherever a packet starts: sampling
# decodes them in order instead.
_NO_TIME_SEEK = frozenset({"mpegts", "mpeg", "mpegvideo", "h264", "hevc", "m4v", "rawvideo"})
# A stream may end this much (plus 2 %) before its declared duration without being cut short
# (the last frame's own length, an audio track that runs on, rounding in the container).
_SHORT_SLACK = 1.0
#: Names videos usually have: what picks videos out of a folder by name (the bytes decide what
#: a file really is, see :mod:`landscape.index.sniff`).
VIDEO_SUFFIXES = frozenset(
    {
        *(".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mkv", ".webm", ".avi"),
        *(".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".asf"),
    }
)
_PLANAR_LUMA = ("yuv", "yuvj", "nv12", "nv21", "gray")


class VideoError(UserError):
    """A video cannot be opened or holds nothing to classify."""


@dataclass(frozen=True)
class SampledFrame:
    """One frame to classify: its time in seconds, the picture, and whether a cut opened it."""

    time: float
    image: Image.Image = field(repr=False)
    cut: bool = False


def format_time(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour), as a timeline shows it."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def is_video_path(path: Path | str) -> bool:
    """Whether ``path`` is named like a video (:data:`VIDEO_SUFFIXES`, any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _reason(exc: BaseException) -> str:
    # FFmpeg's errors read "[Errno 1094995529] Invalid data found …": the number says nothing.
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", " ".join(str(exc).split()))
    return text[:200] if text else type(exc).__name__


def _open(path: Path) -> tuple[Any, Any]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(
            f"not a readable video ({_reason(exc)})", path=path, fix="remove or replace the file"
        ) from exc
    if not container.streams.video:
        container.close()
        raise VideoError("has no video stream", path=path, fix="nothing to classify in it")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame and slice threads: decoding is most of the work
    return container, stream


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def video_duration(path: Path) -> float | None:
    """The video stream's duration in seconds as the container declares it (else the
    container's), or None when it declares none or cannot be opened."""
    import av

    try:
        with av.open(str(path)) as container:
            found = _duration(container, container.streams.video[0])
    except (av.error.FFmpegError, OSError, IndexError, UnicodeDecodeError):
        return None
    return found if found is not None and math.isfinite(found) and found > 0 else None


def _keyframes(path: Path) -> list[float] | None:
    """Times of the video's keyframes from its packets (no decoding); None when unknown."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.format.name.split(",")[0] in _NO_TIME_SEEK:
                return None
            stream = container.streams.video[0]
            start, unit = stream.start_time or 0, stream.time_base
            if unit is None:
                return None
            times = [
                float((packet.pts - start) * unit)
                for packet in container.demux(stream)
                if packet.is_keyframe and packet.pts is not None
            ]
    except (av.error.FFmpegError, OSError, IndexError, UnicodeDecodeError):
        return None
    return sorted(times) or None


def _picture(frame: Any) -> Image.Image:
    image = frame.to_image()
    rotation = getattr(frame, "rotation", 0) or 0
    # The display matrix says how to show the picture (phones film sideways); PIL's rotate is
    # counter-clockwise like the matrix's angle.
    return image.rotate(rotation, expand=True) if rotation % 360 else image


def _thumb(frame: Any) -> np.ndarray:
    """A tiny grey picture of the frame for cut detection: every decoded frame pays for it,
    so it is read straight from the luma plane where the format has one (no conversion)."""
    name = frame.format.name
    if name.startswith(_PLANAR_LUMA) and "p10" not in name and "p12" not in name:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:, : plane.width]
        rows = np.linspace(0, luma.shape[0] - 1, _THUMB[1]).astype(np.intp)
        cols = np.linspace(0, luma.shape[1] - 1, _THUMB[0]).astype(np.intp)
        return luma[np.ix_(rows, cols)].astype(np.int16)
    small = frame.reformat(width=_THUMB[0], height=_THUMB[1], format="gray")
    return small.to_ndarray().astype(np.int16)


def _frames(container: Any, stream: Any) -> Iterator[tuple[float, Any]]:
    start = stream.start_time or 0
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        yield float((frame.pts - start) * stream.time_base), frame


def _should_seek(keyframes: list[float], position: float, target: float) -> bool:
    """Seek when a keyframe lies after what was decoded and at or before the target: decoding
    from it is shorter than decoding everything in between. Never before the first frame (the
    decoder is at the start already, and some demuxers land past it)."""
    if position == -math.inf:
        return False
    i = bisect.bisect_right(keyframes, target + _EPS) - 1
    return i >= 0 and keyframes[i] > position + _EPS


class FrameSampler:
    """The frames to classify in ``path``, in time order, as an iterable (see the module
    docstring). Iterating raises :class:`VideoError` for a file that is not a video, has no
    video stream or no frame; a file that breaks part-way ends the iteration where it broke,
    and then ``broken`` holds the decoder's reason and ``broken_at`` the time of the last frame
    decoded (``last_time``).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        every: float = 1.0,
        scene_cuts: bool = True,
        strategy: Strategy = "seek",
    ) -> None:
        if not every > 0:
            raise ValueError(f"every must be > 0 seconds, got {every}")
        self.path = Path(path)
        self.every = float(every)
        self.scene_cuts = scene_cuts
        self.strategy: Strategy = strategy
        self.broken: str | None = None
        self.broken_at: float | None = None
        self.last_time: float | None = None

    def __iter__(self) -> Iterator[SampledFrame]:
        import av

        self.broken = self.broken_at = self.last_time = None
        keyframes = _keyframes(self.path) if self.strategy == "seek" else None
        container, stream = _open(self.path)
        try:
            yield from self._sample(container, stream, keyframes)
            self._check_length(_duration(container, stream))
        except av.error.FFmpegError as exc:
            if self.last_time is None:
                raise VideoError(
                    f"no frame decodes ({_reason(exc)})",
                    path=self.path,
                    fix="remove or replace the file",
                ) from exc
            # A truncated or corrupt tail: what decoded so far stands, and the break is said.
            self.broken, self.broken_at = _reason(exc), self.last_time
        finally:
            container.close()

    def _check_length(self, declared: float | None) -> None:
        """A file cut short without a decoder error (the index in the header still lists the
        lost frames) ends well before the duration it declares: that is a break too."""
        last = self.last_time
        if declared is None or last is None or not math.isfinite(declared):
            return
        if last < declared - (_SHORT_SLACK + 0.02 * declared):
            self.broken = f"frames end at {last:.1f} s of the {declared:.1f} s the file declares"
            self.broken_at = last

    def _sample(
        self, container: Any, stream: Any, keyframes: list[float] | None
    ) -> Iterator[SampledFrame]:
        every = self.every
        target = 0.0
        previous: np.ndarray | None = None
        last_sampled: np.ndarray | None = None
        position = -math.inf  # time of the last decoded frame
        decoded = _frames(container, stream)
        got_any = False
        while True:
            if keyframes is not None and _should_seek(keyframes, position, target):
                start = stream.start_time or 0
                container.seek(int(target / stream.time_base) + start, stream=stream, backward=True)
                decoded = _frames(container, stream)
                # Across a jump, the first frame (a keyframe: encoders put one at each cut) is
                # compared with the last sample instead.
                previous = last_sampled
            try:
                time, frame = next(decoded)
            except StopIteration:
                break
            position = self.last_time = time
            cut = False
            thumb = None
            if self.scene_cuts:
                thumb = _thumb(frame)
                cut = (
                    previous is not None and float(np.abs(thumb - previous).mean()) > _CUT_THRESHOLD
                )
                previous = thumb
            if time + _EPS >= target or cut:
                got_any = True
                last_sampled = thumb
                yield SampledFrame(time, _picture(frame), cut=cut)
                if time + _EPS >= target:
                    target = (math.floor(time / every + _EPS) + 1) * every
        if not got_any:
            raise VideoError("has no video frames", path=self.path, fix="nothing to classify in it")


def sample_frames(
    path: Path | str,
    *,
    every: float = 1.0,
    scene_cuts: bool = True,
    strategy: Strategy = "seek",
) -> Iterator[SampledFrame]:
    """The frames of :class:`FrameSampler` (for callers that need not know about a break)."""
    return iter(FrameSampler(path, every=every, scene_cuts=scene_cuts, strategy=strategy))
