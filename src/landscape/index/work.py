"""What an extract worker does with one file: hash, sniff, read metadata, decode for the model.

An image comes back as the model's input pixels. A video comes back as its sampled frames
(:class:`~landscape.data.video_frames.FrameSampler`: one every ``every`` seconds plus scene
cuts), already cropped to the model's input and written to the run's spill folder with a small
JPEG of each (the keyframe candidates): an hour of footage is thousands of frames, too many to
pickle through a pipe or to hold in either process.

Runs inside :class:`landscape.index.sandbox.Sandbox` workers, so a hostile file that hangs or
crashes a decoder costs that file only. Everything here is a pure function of the file and
the job; the worker's one piece of state is the model's input pipeline, set once by
:func:`init_worker`. Results travel back by pickling: the decoded image as the model's
``uint8`` input pixels (resized and cropped; the main process normalises whole batches and runs
the network). Nothing here imports torch, so a worker starts in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape.data.io import file_sha256
from landscape.data.video_frames import Strategy
from landscape.errors import UserError

__all__ = ["FileJob", "FileResult", "SpilledFrames", "VideoSampling", "init_worker", "process_file"]

# Set in each worker by init_worker: preprocessing, JPEG draft decoding, video sampling.
_STATE: dict[str, Any] = {}
# Keyframe candidates are kept this small (longest side): what a timeline strip shows.
_KEYFRAME_SIDE = 320
_KEYFRAME_QUALITY = 82


@dataclass(frozen=True)
class VideoSampling:
    """How workers sample videos: the step in seconds, the seek strategy, where to spill."""

    spill: str
    every: float = 1.0
    strategy: Strategy = "seek"


@dataclass(frozen=True)
class SpilledFrames:
    """A video's sampled frames as a worker left them in the spill folder.

    ``pixels`` is a raw ``uint8`` file of ``len(times)`` crops of ``shape`` (the model's input,
    HWC); ``thumbs`` the JPEG keyframe candidates end to end, sample ``i`` at bytes
    ``offsets[i]:offsets[i + 1]``. ``broken`` says why decoding stopped early, if it did.
    """

    pixels: str
    thumbs: str
    shape: tuple[int, int, int]
    times: tuple[float, ...]
    cuts: tuple[bool, ...]
    offsets: tuple[int, ...]
    duration: float | None
    broken: str | None = None
    #: the time of the last frame that decoded, when decoding broke off
    broken_at: float | None = None
    #: pHash of the middle sample (what a re-encoded copy of the video shares)
    phash: int | None = None

    def thumbnail(self, i: int) -> bytes:
        """Sample ``i``'s JPEG."""
        with open(self.thumbs, "rb") as fh:
            fh.seek(self.offsets[i])
            return fh.read(self.offsets[i + 1] - self.offsets[i])

    def discard(self) -> None:
        """Delete the spill files (the video is written, or failed)."""
        for name in (self.pixels, self.thumbs):
            Path(name).unlink(missing_ok=True)


@dataclass(frozen=True)
class FileJob:
    """One file to (re)process; ``known_hash`` lets an mtime-only change skip decoding."""

    path: str
    relative_path: str
    root_id: int
    size: int
    mtime_ns: int
    file_id: int | None = None
    known_hash: str | None = None
    classify: bool = True
    #: decode and classify even when the content hash is unchanged (--reclassify)
    force: bool = False
    #: an unchanged image sent only to be classified (by a new model, or --reclassify)
    reclassify: bool = False


@dataclass
class FileResult:
    """What the worker found; ``error`` set means the file is recorded with status ``error``."""

    job: FileJob
    content_hash: str | None = None
    media_type: str = "other"
    mime: str | None = None
    facts: dict[str, Any] | None = None
    #: the model's input pixels, ``uint8`` HWC (see :func:`landscape.data.transforms.normalize`)
    pixels: np.ndarray | None = field(default=None, repr=False)
    #: a video's sampled frames, spilled to disk
    frames: SpilledFrames | None = None
    #: perceptual hash of the picture (a video: its middle sampled frame), signed 64-bit
    phash: int | None = None
    error: str | None = None
    vanished: bool = False
    same_content: bool = False


def init_worker(
    preprocessing: dict[str, Any] | None,
    draft: bool = True,
    video: VideoSampling | None = None,
) -> None:
    """Remember the model's input pipeline in this worker (``None``: metadata only) and how to
    sample videos (``None``: videos get their metadata only)."""
    _STATE.clear()
    _STATE["draft"] = draft
    _STATE["video"] = video
    if preprocessing is not None:
        from landscape.data.transforms import Preprocessing

        _STATE["pre"] = Preprocessing.model_validate(preprocessing)


def _pixels(path: Path) -> tuple[np.ndarray, int]:
    """The model's input pixels and the pHash, from one decode."""
    from landscape.data.hashing import phash64
    from landscape.data.io import open_image
    from landscape.data.transforms import resize_crop

    pre = _STATE["pre"]
    # JPEG draft: decode at 1/2, 1/4 or 1/8 scale when that still covers the model's input.
    size = (pre.resize_size, pre.resize_size) if _STATE.get("draft", True) else None
    image = open_image(path, draft=size)
    return resize_crop(image, pre), phash64(image)


def _phash_only(path: Path) -> int:
    """The pHash of an image not decoded for a model (a metadata-only run): a small draft."""
    from landscape.data.hashing import phash64
    from landscape.data.io import open_image

    return phash64(open_image(path, draft=(64, 64)))


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def process_file(job: FileJob) -> FileResult:
    """Hash, sniff and (for images) read metadata and decode one file; never raises for a bad
    file — the error is in the result. A file that vanished is flagged ``vanished``."""
    from .extract import extract_image
    from .sniff import sniff_file

    path = Path(job.path)
    result = FileResult(job)
    try:
        result.content_hash = file_sha256(path)
        sniffed = sniff_file(path)
    except FileNotFoundError:
        result.vanished = True
        return result
    except OSError as exc:
        result.error = f"cannot read: {exc.strerror or exc}"
        return result
    result.media_type, result.mime = sniffed.media_type, sniffed.mime
    if result.content_hash == job.known_hash and not job.force:
        result.same_content = True  # only touched: keep metadata and predictions
        return result
    if sniffed.media_type == "video":
        return _video(path, job, result)
    if sniffed.media_type != "image":
        return result  # other files are listed only
    decode = job.classify and "pre" in _STATE
    try:
        # Decoding for the model reads every pixel, which is the integrity check: verifying
        # first as well would decode a large JPEG twice.
        result.facts = extract_image(path, verify=not decode).to_dict()
        if decode:
            result.pixels, result.phash = _pixels(path)
        else:
            result.phash = _phash_only(path)
    except (UserError, OSError, ValueError) as exc:
        result.error = _one_line(exc)
    return result


def _video(path: Path, job: FileJob, result: FileResult) -> FileResult:
    """A video's facts and, when classifying, its sampled frames (spilled); a file that
    breaks part-way keeps the frames before the break and says where it broke."""
    from .extract_video import extract_video

    try:
        facts = extract_video(path)
        result.facts = facts.to_dict()
        sampling: VideoSampling | None = _STATE.get("video")
        if job.classify and "pre" in _STATE and sampling is not None:
            result.frames = _spill(path, job, sampling, facts.duration)
    except (UserError, OSError, ValueError) as exc:
        result.error = _one_line(exc)
        return result
    if result.frames is not None and result.frames.phash is not None:
        result.phash = result.frames.phash
    if result.frames is not None and result.frames.broken is not None:
        from landscape.data.video_frames import format_time

        frames = result.frames
        total = f" of {format_time(frames.duration)}" if frames.duration else ""
        stops = format_time(frames.broken_at or frames.times[-1])
        text = (
            f"decoding stops at {stops}{total} ({frames.broken}); the timeline covers what decoded"
        )
        result.error = " ".join(text.split())[:500]
    return result


def _spill(
    path: Path, job: FileJob, sampling: VideoSampling, duration: float | None
) -> SpilledFrames:
    """Sample ``path`` and write the crops and keyframe candidates to the spill folder."""
    import io
    import os

    from landscape.data.hashing import phash64
    from landscape.data.transforms import resize_crop
    from landscape.data.video_frames import FrameSampler

    pre = _STATE["pre"]
    _STATE["spilled"] = _STATE.get("spilled", 0) + 1
    stem = Path(sampling.spill) / f"{os.getpid()}-{_STATE['spilled']}"
    pixels_path, thumbs_path = f"{stem}.u8", f"{stem}.jpgs"
    times: list[float] = []
    cuts: list[bool] = []
    offsets = [0]
    hashes: list[int] = []
    shape: tuple[int, int, int] = (0, 0, 3)
    sampler = FrameSampler(path, every=sampling.every, strategy=sampling.strategy)
    try:
        with open(pixels_path, "wb") as pixels, open(thumbs_path, "wb") as thumbs:
            for sample in sampler:
                crop = resize_crop(sample.image, pre)
                shape = (int(crop.shape[0]), int(crop.shape[1]), 3)
                pixels.write(np.ascontiguousarray(crop, dtype=np.uint8).tobytes())
                small = sample.image.copy()
                small.thumbnail((_KEYFRAME_SIDE, _KEYFRAME_SIDE))
                buffer = io.BytesIO()
                small = small.convert("RGB")
                small.save(buffer, "JPEG", quality=_KEYFRAME_QUALITY)
                hashes.append(phash64(small))  # cheap on the thumbnail; the middle one is kept
                thumbs.write(buffer.getvalue())
                offsets.append(offsets[-1] + buffer.tell())
                times.append(sample.time)
                cuts.append(sample.cut)
    except BaseException:
        for name in (pixels_path, thumbs_path):
            Path(name).unlink(missing_ok=True)
        raise
    return SpilledFrames(
        pixels=pixels_path,
        thumbs=thumbs_path,
        shape=shape,
        times=tuple(times),
        cuts=tuple(cuts),
        offsets=tuple(offsets),
        duration=duration,
        broken=sampler.broken,
        broken_at=sampler.broken_at,
        phash=hashes[len(hashes) // 2] if hashes else None,
    )
