"""Walking storage roots: every regular file under a root, in a stable order, without surprises.

The walk is deterministic (entries sorted by name), never follows symbolic links (so a link
leaving the root is not followed, a link loop cannot trap it and no file is counted twice), and
never stops on an unreadable folder or a file that vanishes mid-scan: those come out as
:class:`WalkProblem` items for the caller to record.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from landscape.errors import UserError

__all__ = ["FoundFile", "RootError", "WalkProblem", "check_root", "count_files", "walk"]


class RootError(UserError):
    """A storage root is missing, not a folder, or looks unmounted."""


@dataclass(frozen=True)
class FoundFile:
    """A regular file: path relative to its root (POSIX separators), size and mtime."""

    relative_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class WalkProblem:
    """Something under a root that could not be listed (the reason on one line)."""

    relative_path: str
    error: str


def check_root(root: Path) -> Path:
    """The absolute, resolved root; a missing path or a file is a :class:`RootError`."""
    path = Path(root).expanduser()
    if not path.exists():
        raise RootError("does not exist", path=path, fix="check the path, or mount the share")
    if not path.is_dir():
        raise RootError("is not a folder", path=path, fix="pass the folder that holds the media")
    return path.resolve()


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def walk(root: Path) -> Iterator[FoundFile | WalkProblem]:
    """Every regular file under ``root`` (depth first, sorted), and every problem met."""
    root = Path(root)
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = _entries(folder)
        except OSError as exc:
            yield WalkProblem(prefix.rstrip("/") or ".", f"cannot list folder: {exc.strerror}")
            continue
        subfolders: list[tuple[Path, str]] = []
        for entry in entries:
            relative = prefix + entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:  # vanished or unreadable between listing and stat
                yield WalkProblem(relative, f"cannot stat: {exc.strerror}")
                continue
            if stat.S_ISLNK(info.st_mode):
                continue  # links are never followed (no escapes, no loops, no double counts)
            if stat.S_ISDIR(info.st_mode):
                subfolders.append((Path(entry.path), relative + "/"))
            elif stat.S_ISREG(info.st_mode):
                yield FoundFile(relative, info.st_size, info.st_mtime_ns)
        stack.extend(reversed(subfolders))  # sorted order when popped


def count_files(root: Path) -> int:
    """How many regular files :func:`walk` will yield (for progress totals)."""
    return sum(1 for item in walk(root) if isinstance(item, FoundFile))
