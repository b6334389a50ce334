"""Duplicate files in the index: exact copies (same content hash) and near-duplicates (pHash).

What an archivist asks before deleting anything: which files are the same bytes, and which
show the same picture although their bytes differ (a resized, re-encoded or re-exported copy;
a video transcoded to another codec). Exact groups come from ``files.content_hash``;
near-duplicate groups link files whose perceptual hashes (``files.phash``, computed when the
index decoded them) are at most ``max_bits`` of 64 apart, found with
:func:`landscape.data.hashing.near_duplicate_pairs` (no all-pairs comparison), and joined
transitively. Files marked ``missing`` are left out: they are no longer there to delete.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from landscape.data.hashing import NEAR_DUPLICATE_BITS, near_duplicate_pairs

from .schema import File, Root

__all__ = ["DuplicateFile", "DuplicateGroup", "find_duplicates"]

DuplicateKind = Literal["exact", "near"]


@dataclass(frozen=True)
class DuplicateFile:
    """One member of a group."""

    id: int
    path: str
    size: int
    media_type: str
    content_hash: str | None


@dataclass(frozen=True)
class DuplicateGroup:
    """Files that are one another's copies: the same bytes (``exact``) or the same picture
    (``near``: at least two different contents within the pHash distance)."""

    kind: DuplicateKind
    files: tuple[DuplicateFile, ...]

    @property
    def reclaimable(self) -> int:
        """Bytes freed by keeping only the largest file of the group."""
        sizes = sorted(f.size for f in self.files)
        return sum(sizes[:-1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "reclaimable": self.reclaimable,
            "files": [asdict(f) for f in self.files],
        }


def _files(session: Session, where: Any) -> list[DuplicateFile]:
    rows = session.execute(
        select(
            File.id,
            Root.path.label("root"),
            File.relative_path,
            File.size,
            File.media_type,
            File.content_hash,
        )
        .join(Root, Root.id == File.root_id)
        .where(File.status != "missing", where)
        .order_by(File.id)
    )
    return [
        DuplicateFile(
            r.id, f"{r.root.rstrip('/')}/{r.relative_path}", r.size, r.media_type, r.content_hash
        )
        for r in rows
    ]


def _exact(session: Session) -> list[DuplicateGroup]:
    shared = (
        select(File.content_hash)
        .where(File.status != "missing", File.content_hash.is_not(None))
        .group_by(File.content_hash)
        .having(func.count(File.id) > 1)
    )
    by_hash: dict[str | None, list[DuplicateFile]] = defaultdict(list)
    for found in _files(session, File.content_hash.in_(shared)):
        by_hash[found.content_hash].append(found)
    return [DuplicateGroup("exact", tuple(members)) for members in by_hash.values()]


def _near(session: Session, max_bits: int) -> list[DuplicateGroup]:
    rows = session.execute(
        select(File.id, File.phash).where(File.status != "missing", File.phash.is_not(None))
    ).all()
    ids = [r.id for r in rows]
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in near_duplicate_pairs([r.phash for r in rows], max_bits).tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    components: dict[int, list[int]] = defaultdict(list)
    for i, file_id in enumerate(ids):
        components[find(i)].append(file_id)
    linked = [members for members in components.values() if len(members) > 1]
    if not linked:
        return []
    wanted = {file_id for members in linked for file_id in members}
    files = {f.id: f for f in _files(session, File.id.in_(wanted))}
    groups = []
    for members in linked:
        found = tuple(files[i] for i in sorted(members) if i in files)
        if len({f.content_hash for f in found}) > 1:  # all one content: an exact group
            groups.append(DuplicateGroup("near", found))
    return groups


def find_duplicates(
    session: Session, *, exact_only: bool = False, max_bits: int = NEAR_DUPLICATE_BITS
) -> list[DuplicateGroup]:
    """Groups of duplicates, the most bytes to reclaim first: exact copies, then (unless
    ``exact_only``) near-duplicates — pictures within ``max_bits`` of 64 pHash bits."""
    if not 0 <= max_bits < 64:
        raise ValueError(f"max_bits must be 0…63, got {max_bits}")
    groups = _exact(session)
    if not exact_only:
        groups += _near(session, max_bits)
    return sorted(groups, key=lambda g: (-g.reclaimable, g.kind, g.files[0].path))
