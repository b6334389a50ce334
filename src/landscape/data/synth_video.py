"""Synthetic video clips: real MP4/MOV/MKV/WebM/AVI bytes written with PyAV.

A clip is a list of *scenes*, each a synthetic landscape of one class (see
:mod:`landscape.data.synth`) shown for some seconds while the camera pans slowly across it, so
consecutive frames differ as footage does and a cut from one scene to the next is a real cut.
What the video tests, the demo archive and the video benchmarks are made of; the truth of each
clip (which class from when to when) is returned with it.

:func:`write_clip` is the general writer underneath: any frames, any codec the installed PyAV
has (``libx264``, ``mpeg4``, ``libvpx-vp9``…), container tags (``location``, ``creation_time``),
muxer options (``movflags``) and, for variable frame rate, explicit timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from .synth import render_landscape

__all__ = ["ClipTruth", "Scene", "Shot", "landscape_clip", "picture_clip", "write_clip"]

# Timestamps are written in this unit when given explicitly (variable frame rate).
_TIME_BASE = Fraction(1, 1000)


@dataclass(frozen=True)
class Scene:
    """``seconds`` of a landscape of class ``label``."""

    label: str
    seconds: float


@dataclass(frozen=True)
class ClipTruth:
    """What a synthetic clip shows: each scene's label with its start and end in seconds."""

    path: Path
    segments: tuple[tuple[float, float, str], ...]
    fps: float
    size: tuple[int, int]

    @property
    def duration(self) -> float:
        """Seconds of video."""
        return self.segments[-1][1] if self.segments else 0.0


def write_clip(
    path: Path,
    frames: Iterable[np.ndarray | Image.Image],
    *,
    fps: float = 10.0,
    codec: str = "libx264",
    timestamps: Sequence[float] | None = None,
    metadata: Mapping[str, str] | None = None,
    stream_metadata: Mapping[str, str] | None = None,
    container_options: Mapping[str, str] | None = None,
    codec_options: Mapping[str, str] | None = None,
    bit_rate: int | None = None,
) -> Path:
    """Encode RGB ``frames`` (all the same size, even width and height) into ``path``.

    The container is chosen by the suffix (``.mp4``, ``.mov``, ``.mkv``, ``.webm``, ``.avi``,
    ``.ts``). ``timestamps`` (seconds, increasing, one per frame) make a variable-frame-rate
    clip; otherwise frames are ``1 / fps`` apart. ``metadata`` are container tags (e.g.
    ``{"location": "+48.8577+002.2950/"}``), ``container_options`` muxer options (e.g.
    ``{"movflags": "faststart"}``), ``codec_options`` encoder options (e.g. ``{"preset":
    "veryfast", "g": "25"}`` for libx264: a keyframe every 25 frames).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", options=dict(container_options or {})) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream), f"{codec} is not a video encoder"
        stream.pix_fmt = "yuv420p"
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        if codec_options:
            stream.options = dict(codec_options)
        for key, value in (stream_metadata or {}).items():
            stream.metadata[key] = value
        if timestamps is not None:
            stream.codec_context.time_base = _TIME_BASE
        started = False
        for i, image in enumerate(frames):
            pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
            if not started:
                stream.height, stream.width = pixels.shape[:2]
                started = True
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            if timestamps is not None:
                frame.pts = round(timestamps[i] / _TIME_BASE)
                frame.time_base = _TIME_BASE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _pan(scene: Image.Image, size: tuple[int, int], steps: int) -> Iterable[np.ndarray]:
    """``steps`` frames of ``size`` sliding left to right across ``scene``."""
    width, height = size
    wide = scene.resize((round(width * 1.25), height), Image.Resampling.BILINEAR)
    pixels = np.asarray(wide)
    room = pixels.shape[1] - width
    for step in range(steps):
        left = round(room * step / max(1, steps - 1))
        yield pixels[:, left : left + width]


@dataclass(frozen=True)
class Shot:
    """``seconds`` of one picture (a photo, a rendering) that shows class ``label``."""

    label: str
    picture: Image.Image = field(repr=False)
    seconds: float


def picture_clip(
    path: Path,
    shots: Sequence[Shot],
    *,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 180),
    codec: str = "libx264",
    **options: object,
) -> ClipTruth:
    """A clip panning across each shot's picture in turn; returns the truth with it.

    Consecutive shots of the same label make one segment of the truth. ``options`` go to
    :func:`write_clip` (``metadata``, ``container_options``…).
    """
    segments: list[tuple[float, float, str]] = []
    frames: list[np.ndarray] = []
    start = 0.0
    for shot in shots:
        steps = max(1, round(shot.seconds * fps))
        frames.extend(_pan(shot.picture.convert("RGB"), size, steps))
        end = start + steps / fps
        if segments and segments[-1][2] == shot.label:
            segments[-1] = (segments[-1][0], end, shot.label)
        else:
            segments.append((start, end, shot.label))
        start = end
    write_clip(path, frames, fps=fps, codec=codec, **options)  # type: ignore[arg-type]
    return ClipTruth(Path(path), tuple(segments), fps, size)


def landscape_clip(
    path: Path,
    scenes: Sequence[Scene],
    *,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 180),
    seed: int = 0,
    codec: str = "libx264",
    **options: object,
) -> ClipTruth:
    """A clip of synthetic landscapes, one per scene, panned; returns the truth with it.

    ``options`` go to :func:`write_clip` (``metadata``, ``container_options``…).
    """
    rng = np.random.default_rng(seed)
    shots = [
        Shot(scene.label, render_landscape(scene.label, rng, max(size)), scene.seconds)
        for scene in scenes
    ]
    return picture_clip(path, shots, fps=fps, size=size, codec=codec, **options)
