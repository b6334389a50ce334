"""Batched writes of the index: one transaction per batch, so a kill leaves whole files only.

Each function takes an open :class:`~sqlalchemy.orm.Session` inside the caller's transaction;
:mod:`.pipeline` decides what to write and commits once per batch. Predictions of a file for
a model are replaced, never duplicated (the unique key backs this up).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session

from .schema import Embedding, File, MediaMetadata, Prediction, Root, utcnow

__all__ = [
    "Classified",
    "find_moved",
    "mark_missing",
    "replace_predictions",
    "touch",
    "upsert_media",
]

_MEDIA_COLUMNS = frozenset(c.name for c in MediaMetadata.__table__.columns) - {"file_id"}


@dataclass(frozen=True)
class Classified:
    """One prediction row to store: label, confidence, probabilities, unknown flag, embedding;
    for a video, which segment (0: the whole video), its times and its keyframe's path."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    is_unknown: bool
    embedding: np.ndarray | None
    segment: int = 0
    start: float | None = None
    end: float | None = None
    keyframe: str | None = None


def touch(session: Session, file_ids: Sequence[int], seen_at: datetime) -> None:
    """Mark unchanged files as seen by this scan (and present again if they were missing)."""
    if file_ids:
        session.execute(
            update(File),
            [{"id": i, "last_seen_at": seen_at} for i in file_ids],
        )


def upsert_media(session: Session, items: Sequence[tuple[int, dict[str, Any], Any]]) -> None:
    """Replace the ``media_metadata`` rows of a batch: ``(file_id, facts, place or None)``.

    One delete and one multi-row insert per batch, not a round trip per file.
    """
    if not items:
        return
    rows = []
    for file_id, facts, place in items:
        row: dict[str, Any] = dict.fromkeys(_MEDIA_COLUMNS)
        row.update((k, v) for k, v in facts.items() if k in _MEDIA_COLUMNS)
        if place is not None:
            row.update(
                place_country=place.country, place_region=place.region, place_city=place.city
            )
        rows.append({"file_id": file_id, **row})
    session.execute(
        delete(MediaMetadata).where(MediaMetadata.file_id.in_([i for i, _, _ in items]))
    )
    session.execute(insert(MediaMetadata), rows)


def replace_predictions(
    session: Session, model_id: str, items: Sequence[tuple[int, Classified]]
) -> set[str]:
    """Store each file's predictions under ``model_id`` — a still image's one row, a video's
    whole-video row and segments — with their embeddings as float16 bytes, replacing any
    earlier ones for that model. Batched: one delete, one insert of the predictions (ids
    returned in order), one of the embeddings. Returns the keyframes the replaced rows had
    that no new row uses (to delete once the transaction commits)."""
    if not items:
        return set()
    file_ids = sorted({file_id for file_id, _ in items})
    mine = and_(Prediction.file_id.in_(file_ids), Prediction.model_id == model_id)
    before = set(
        session.scalars(select(Prediction.keyframe).where(mine, Prediction.keyframe.is_not(None)))
    )
    session.execute(delete(Prediction).where(mine))
    now = utcnow()
    ids = session.scalars(
        insert(Prediction).returning(Prediction.id, sort_by_parameter_order=True),
        [
            {
                "file_id": file_id,
                "model_id": model_id,
                "segment": row.segment,
                "label": row.label,
                "confidence": row.confidence,
                "probabilities": row.probabilities,
                "is_unknown": row.is_unknown,
                "segment_start": row.start,
                "segment_end": row.end,
                "keyframe": row.keyframe,
                "created_at": now,
            }
            for file_id, row in items
        ],
    ).all()
    vectors = [
        {"prediction_id": pid, "dim": int(vector.size), "vector": vector.tobytes()}
        for pid, (_, row) in zip(ids, items, strict=True)
        if row.embedding is not None
        for vector in [np.asarray(row.embedding, dtype=np.float16)]
    ]
    if vectors:
        session.execute(insert(Embedding), vectors)
    gone = {name for name in before if name is not None} - {row.keyframe for _, row in items}
    if gone:
        # Names are content-addressed: an identical copy elsewhere may still show the same ones.
        gone -= set(
            session.scalars(select(Prediction.keyframe).where(Prediction.keyframe.in_(gone)))
        )
    return gone


def find_moved(
    session: Session, content_hashes: Sequence[str], roots: dict[int, Path]
) -> dict[str, File]:
    """Known files with these contents whose recorded path no longer exists: the same files,
    moved or renamed (each keeps its id, history and corrections). One query per batch;
    at most one file per hash, the oldest."""
    if not content_hashes:
        return {}
    candidates = session.scalars(
        select(File).where(File.content_hash.in_(set(content_hashes))).order_by(File.id)
    ).all()
    moved: dict[str, File] = {}
    for row in candidates:
        if row.content_hash is None or row.content_hash in moved:
            continue
        root = roots.get(row.root_id)
        if root is None:
            root_row = session.get(Root, row.root_id)
            root = Path(root_row.path) if root_row is not None else None
        if root is None or not os.path.lexists(root / row.relative_path):
            moved[row.content_hash] = row
    return moved


def mark_missing(session: Session, root_id: int, scan_started: datetime) -> int:
    """Files of ``root_id`` this scan did not see become ``missing`` (kept, not dropped)."""
    result = session.execute(
        update(File)
        .where(
            File.root_id == root_id,
            File.last_seen_at < scan_started,
            File.status != "missing",
        )
        .values(status="missing")
    )
    return int(getattr(result, "rowcount", 0) or 0)
