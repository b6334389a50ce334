"""What an extract worker does with one file: hash, sniff, read metadata, decode for the model.

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
from landscape.errors import UserError

__all__ = ["FileJob", "FileResult", "init_worker", "process_file"]

# Set in each worker by init_worker: (preprocessing as a dict, use JPEG draft decoding).
_STATE: dict[str, Any] = {}


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
    error: str | None = None
    vanished: bool = False
    same_content: bool = False


def init_worker(preprocessing: dict[str, Any] | None, draft: bool = True) -> None:
    """Remember the model's input pipeline in this worker (``None``: metadata only)."""
    _STATE.clear()
    _STATE["draft"] = draft
    if preprocessing is not None:
        from landscape.data.transforms import Preprocessing

        _STATE["pre"] = Preprocessing.model_validate(preprocessing)


def _pixels(path: Path) -> np.ndarray:
    from landscape.data.io import open_image
    from landscape.data.transforms import resize_crop

    pre = _STATE["pre"]
    # JPEG draft: decode at 1/2, 1/4 or 1/8 scale when that still covers the model's input.
    size = (pre.resize_size, pre.resize_size) if _STATE.get("draft", True) else None
    return resize_crop(open_image(path, draft=size), pre)


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
    if sniffed.media_type != "image":
        return result  # videos arrive with their own issue; other files are listed only
    decode = job.classify and "pre" in _STATE
    try:
        # Decoding for the model reads every pixel, which is the integrity check: verifying
        # first as well would decode a large JPEG twice.
        result.facts = extract_image(path, verify=not decode).to_dict()
        if decode:
            result.pixels = _pixels(path)
    except (UserError, OSError, ValueError) as exc:
        result.error = _one_line(exc)
    return result
