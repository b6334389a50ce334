"""Storing an upload and indexing it at once, through the index's own (sandboxed) pipeline.

The bytes are streamed to a private incoming folder with a size cap, sniffed (only images and
videos are taken), moved under ``<upload root>/<YYYY-MM>/`` with a content-hash prefix (two
uploads of one name never collide), and indexed with
:func:`~landscape.index.pipeline.index_changes`. A file the pipeline cannot read (corrupt, a
decompression bomb, a hostile video) is removed again with its rows: nothing is stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from landscape.errors import UserError
from landscape.index.db import DatabaseError
from landscape.index.schema import File, Root

__all__ = ["UploadError", "receive", "store_upload"]

_CHUNK = 1 << 20
_LOCK = threading.Lock()
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_LOCK_WAIT_S = 30.0


class UploadError(UserError):
    """An upload that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.status = status


@dataclass(frozen=True)
class Stored:
    """An indexed upload: its file id and row."""

    file_id: int
    path: Path


def _safe_name(name: str | None) -> str:
    base = os.path.basename((name or "upload").replace("\\", "/"))
    base = _UNSAFE_NAME.sub("_", base).strip(". ") or "upload"
    return base[-120:]


def receive(stream: BinaryIO, incoming: Path, limit: int) -> tuple[Path, str, int]:
    """Copy ``stream`` to a temporary file under ``incoming``: its path, SHA-256 and size."""
    incoming.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=incoming, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadError(
                        f"the file is larger than the {limit / 1e6:g} MB limit",
                        status=413,
                        fix="upload a smaller file or raise LANDSCAPE_MAX_UPLOAD_MB",
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size


def store_upload(
    engine: Any,
    session: Session,
    stream: BinaryIO,
    filename: str | None,
    *,
    upload_root: Path,
    incoming: Path,
    limit_bytes: int,
    predictor: Any,
) -> Stored:
    """Receive, check, store and index one upload; raises :class:`UploadError`."""
    from landscape.index.pipeline import IndexOptions
    from landscape.index.sniff import sniff_file

    tmp, sha, size = receive(stream, incoming, limit_bytes)
    try:
        if size == 0:
            raise UploadError("the file is empty", status=400, fix="choose a photo or a video")
        sniffed = sniff_file(tmp)
        if sniffed.media_type not in ("image", "video"):
            raise UploadError(
                f"{_safe_name(filename)} is not an image or a video (its bytes say "
                f"{sniffed.mime or 'unknown'})",
                status=415,
                fix="upload a JPEG, PNG, WebP, TIFF, HEIC photo or an MP4/MOV/MKV/WebM video",
            )
        month = datetime.now(UTC).strftime("%Y-%m")
        target = upload_root / month / f"{sha[:12]}-{_safe_name(filename)}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    root = upload_root.resolve()
    relative = target.resolve().relative_to(root).as_posix()
    _index(engine, root, target, predictor, IndexOptions(workers=1))
    session.expire_all()
    row = session.scalar(
        select(File)
        .join(Root, Root.id == File.root_id)
        .where(Root.path == str(root), File.relative_path == relative)
    )
    if row is None or row.status != "ok":
        reason = row.error if row is not None and row.error else "it could not be read"
        if row is not None:
            session.delete(row)
            session.commit()
        target.unlink(missing_ok=True)
        raise UploadError(
            f"{_safe_name(filename)} was not stored: {reason}",
            status=422,
            fix="check that the file opens, then upload it again",
        )
    return Stored(row.id, target)


def _index(engine: Any, root: Path, target: Path, predictor: Any, options: Any) -> None:
    """``index_changes`` for one file, waiting a while for another writer to finish."""
    from landscape.index.pipeline import index_changes

    deadline = time.monotonic() + _LOCK_WAIT_S
    with _LOCK:
        while True:
            try:
                index_changes(engine, root, [target], predictor=predictor, options=options)
                return
            except DatabaseError as exc:
                if "is writing" not in str(exc) or time.monotonic() > deadline:
                    target.unlink(missing_ok=True)
                    raise UploadError(str(exc), status=503) from exc
                time.sleep(0.5)
