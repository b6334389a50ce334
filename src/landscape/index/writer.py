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
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .schema import Embedding, File, MediaMetadata, Prediction, Root

__all__ = [
    "ClassifiedImage",
    "find_moved",
    "mark_missing",
    "replace_predictions",
    "touch",
    "upsert_media",
]

_MEDIA_COLUMNS = frozenset(c.name for c in MediaMetadata.__table__.columns) - {"file_id"}


@dataclass(frozen=True)
class ClassifiedImage:
    """One prediction to store: label, confidence, probabilities, unknown flag, embedding."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    is_unknown: bool
    embedding: np.ndarray | None


def touch(session: Session, file_ids: Sequence[int], seen_at: datetime) -> None:
    """Mark unchanged files as seen by this scan (and present again if they were missing)."""
    if file_ids:
        session.execute(
            update(File),
            [{"id": i, "last_seen_at": seen_at} for i in file_ids],
        )


def upsert_media(session: Session, file_id: int, facts: dict[str, Any], place: Any) -> None:
    """Replace the file's ``media_metadata`` row with ``facts`` (+ place names)."""
    row = {k: v for k, v in facts.items() if k in _MEDIA_COLUMNS}
    if place is not None:
        row.update(place_country=place.country, place_region=place.region, place_city=place.city)
    existing = session.get(MediaMetadata, file_id)
    if existing is None:
        session.add(MediaMetadata(file_id=file_id, **row))
    else:
        for key in _MEDIA_COLUMNS:
            setattr(existing, key, row.get(key))


def replace_predictions(
    session: Session, file_id: int, model_id: str, image: ClassifiedImage
) -> None:
    """The file's one prediction under ``model_id`` (a still image: segment 0), with its
    embedding as float16 bytes; any earlier one for that model is replaced."""
    session.execute(
        delete(Prediction).where(Prediction.file_id == file_id, Prediction.model_id == model_id)
    )
    prediction = Prediction(
        file_id=file_id,
        model_id=model_id,
        segment=0,
        label=image.label,
        confidence=image.confidence,
        probabilities=image.probabilities,
        is_unknown=image.is_unknown,
    )
    if image.embedding is not None:
        vector = np.asarray(image.embedding, dtype=np.float16)
        prediction.embedding = Embedding(dim=int(vector.size), vector=vector.tobytes())
    session.add(prediction)


def find_moved(session: Session, content_hash: str, roots: dict[int, Path]) -> File | None:
    """A known file with this content whose recorded path no longer exists: the same file,
    moved or renamed (it keeps its id, history and corrections)."""
    candidates = session.scalars(
        select(File).where(File.content_hash == content_hash).order_by(File.id)
    ).all()
    for row in candidates:
        root = roots.get(row.root_id)
        if root is None:
            root_row = session.get(Root, row.root_id)
            root = Path(root_row.path) if root_row is not None else None
        if root is None or not os.path.lexists(root / row.relative_path):
            return row
    return None


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
