"""Where the index keeps its pictures: a video segment's keyframe, a small JPEG on disk.

Pictures live beside the database, not in it (rows stay narrow; the web server sends files).
A SQLite index ``archive.db`` keeps them in ``archive.keyframes/`` next to it, so the two move
together; any other database (PostgreSQL) in ``<data dir>/keyframes`` (``LANDSCAPE_HOME``).
The database stores each picture's path relative to that folder.

Names are content-addressed — model, the video's content hash, segment number — so indexing
the same video again rewrites the same files, a moved video keeps its pictures, and two copies
of one video share them. Writes are atomic (a temporary file renamed), so a killed run never
leaves half a JPEG under a name the database knows.

The folder also holds the index run's *spill* area (``.spill-<pid>``): the sampled frames of
videos in flight, written by the sandboxed workers (too many to send back through a pipe) and
deleted once the video is written. A run removes what a killed run left there.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.engine import URL, make_url

__all__ = [
    "clear_stale_spills",
    "keyframe_name",
    "keyframe_root",
    "remove_keyframes",
    "spill_dir",
    "write_keyframe",
]

_SPILL_PREFIX = ".spill-"


def keyframe_root(database_url: str | URL) -> Path:
    """The keyframe folder of the index at ``database_url`` (see the module docstring)."""
    url = make_url(database_url) if isinstance(database_url, str) else database_url
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        path = Path(database).expanduser().resolve()
        return path.with_name(f"{path.stem}.keyframes")
    from landscape.settings import get_settings

    return get_settings().data_dir / "keyframes"


def keyframe_name(model_id: str, content_hash: str, segment: int) -> str:
    """The relative path of a segment's keyframe (``model/ab/abcdef…-3.jpg``)."""
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", model_id).lstrip(".") or "model"
    return f"{folder}/{content_hash[:2]}/{content_hash}-{segment}.jpg"


def write_keyframe(root: Path, name: str, jpeg: bytes) -> None:
    """Write a keyframe atomically under ``root`` (folders made as needed)."""
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(jpeg)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_keyframes(root: Path, names: Iterable[str]) -> int:
    """Delete keyframes no row refers to any more; returns how many were there."""
    removed = 0
    for name in names:
        path = root / name
        if root.resolve() not in path.resolve().parents:
            continue  # a crafted row must not delete files outside the folder
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def spill_dir(root: Path) -> Path:
    """A fresh spill folder for this process's run, inside ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{_SPILL_PREFIX}{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def clear_stale_spills(root: Path) -> None:
    """Remove spill folders of earlier runs (killed ones leave theirs); only call while
    holding the index's writer lock, so no live run's folder is taken away."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name.startswith(_SPILL_PREFIX) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
