"""Thumbnails: made once per content hash, cached on disk, EXIF orientation applied.

A still image is decoded once (JPEG draft decoding to the nearest scale above the thumbnail's
size), turned upright, shrunk to :data:`SIDE` px on its longest side and written as a JPEG
under ``<cache>/<hash[:2]>/<hash>.jpg`` (atomically: a concurrent request never sees half a
file). A video's thumbnail is its keyframe (written at index time). Identical copies share one.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from landscape.errors import UserError

__all__ = ["SIDE", "cached_thumbnail", "make_thumbnail"]

SIDE = 400
_QUALITY = 85


def make_thumbnail(source: Path, side: int = SIDE) -> bytes:
    """A JPEG of ``source`` at most ``side`` px on its longest side, upright."""
    from landscape.data.io import open_image

    image = open_image(source, draft=(side, side))  # turned upright by its EXIF orientation
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=_QUALITY, optimize=True)
    return buffer.getvalue()


def cached_thumbnail(cache: Path, content_hash: str, source: Path) -> Path:
    """The cached thumbnail of content ``content_hash`` read from ``source``, made if needed.

    Raises :class:`~landscape.errors.UserError` when the file cannot be decoded.
    """
    if len(content_hash) < 8 or not content_hash.isalnum():
        raise UserError("the file has no content hash", fix="re-index it")
    target = cache / content_hash[:2] / f"{content_hash}.jpg"
    if target.is_file():
        return target
    data = make_thumbnail(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
