"""Reading the index for the API: filters from query parameters, cursors, a file's detail.

Pure functions of a session and plain values; the routes (:mod:`.routes`) add HTTP.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from landscape.errors import UserError
from landscape.index.repository import SearchFilters, SearchHit, resolve_model_id, search
from landscape.index.schema import Correction, File, MediaMetadata, Model, Prediction, Root

__all__ = [
    "PathError",
    "decode_cursor",
    "encode_cursor",
    "file_detail",
    "list_files",
    "parse_bbox",
    "parse_near",
    "resolve_in_roots",
    "utc_iso",
]


class PathError(UserError):
    """A file path outside the roots the service may read."""


def encode_cursor(hit: SearchHit) -> str:
    """The opaque cursor after ``hit`` (its sort key: ``taken_at`` and id)."""
    raw = f"{hit.taken_at or ''}|{hit.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int]:
    """The sort key in a cursor (a one-line error for one that was not made here)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        taken, _, file_id = raw.partition("|")
        return datetime.fromisoformat(taken), int(file_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError("the cursor is not valid", fix="use next_cursor of a response") from exc


def _floats(text: str, n: int, what: str, example: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n or any(v != v for v in values):
        raise UserError(f"cannot read {what} {text!r}", fix=f"use {example}")
    return values


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``south,west,north,east`` in degrees."""
    if text is None:
        return None
    s, w, n, e = _floats(text, 4, "the bounding box", "SOUTH,WEST,NORTH,EAST e.g. 45,5,48,10")
    if not (-90 <= s <= n <= 90 and -180 <= w <= 180 and -180 <= e <= 180):
        raise UserError(f"the bounding box {text!r} is not on Earth", fix="south ≤ north, ±90/±180")
    return s, w, n, e


def parse_near(text: str | None) -> tuple[float, float, float] | None:
    """``lat,lon,km``."""
    if text is None:
        return None
    lat, lon, km = _floats(text, 3, "the point", "LAT,LON,KM e.g. 48.85,2.35,10")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and km > 0):
        raise UserError(f"the point {text!r} is not on Earth", fix="lat ±90, lon ±180, km > 0")
    return lat, lon, km


def list_files(
    session: Session, filters: SearchFilters, cursor: str | None
) -> tuple[list[SearchHit], str | None]:
    """One page of files and the cursor of the next (None on the last page)."""
    if cursor is not None:
        filters = replace(filters, after=decode_cursor(cursor))
    page = search(session, replace(filters, limit=filters.limit + 1))
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return page, encode_cursor(page[-1]) if more and page else None


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def utc_iso(value: datetime | None) -> str | None:
    """A moment of a timezone-aware column in ISO 8601 with its offset (SQLite hands them back
    naive: they are UTC), so both databases answer alike."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def file_detail(session: Session, file_id: int, model_id: str | None = None) -> dict[str, Any]:
    """Everything about one file: row, metadata, the model's predictions (a video's timeline),
    the model's provenance and the corrections, newest first."""
    row = session.get(File, file_id)
    if row is None:
        raise LookupError(file_id)
    root = session.get(Root, row.root_id)
    model_id = model_id or resolve_model_id(session, SearchFilters())
    predictions = (
        list(
            session.scalars(
                select(Prediction)
                .where(Prediction.file_id == file_id, Prediction.model_id == model_id)
                .order_by(Prediction.segment)
            )
        )
        if model_id
        else []
    )
    media = session.get(MediaMetadata, file_id)
    model = session.get(Model, model_id) if model_id else None
    corrections = session.scalars(
        select(Correction)
        .where(Correction.file_id == file_id)
        .order_by(Correction.created_at.desc(), Correction.id.desc())
    ).all()
    whole = next((p for p in predictions if p.segment == 0), None)
    return {
        "id": row.id,
        "path": f"{root.path.rstrip('/')}/{row.relative_path}" if root else row.relative_path,
        "relative_path": row.relative_path,
        "name": os.path.basename(row.relative_path),
        "media_type": row.media_type,
        "mime": row.mime,
        "status": row.status,
        "error": row.error,
        "size": row.size,
        "content_hash": row.content_hash,
        "taken_at": _iso(row.taken_at),
        "indexed_at": utc_iso(row.indexed_at),
        "metadata": _media(media),
        "prediction": _prediction(whole) if whole else None,
        "segments": [_prediction(p) for p in predictions if p.segment > 0],
        "model": _model(model),
        "reviewed_label": corrections[0].label if corrections else None,
        "corrections": [_correction(c) for c in corrections],
    }


def _media(media: MediaMetadata | None) -> dict[str, Any] | None:
    if media is None:
        return None
    out: dict[str, Any] = {}
    for column in MediaMetadata.__table__.columns:
        if column.name == "file_id":
            continue
        value = getattr(media, column.name)
        out[column.name] = _iso(value) if isinstance(value, datetime | date) else value
    return out


def _prediction(p: Prediction) -> dict[str, Any]:
    return {
        "segment": p.segment,
        "label": p.label,
        "confidence": p.confidence,
        "is_unknown": p.is_unknown,
        "probabilities": p.probabilities,
        "start": p.segment_start,
        "end": p.segment_end,
        "has_keyframe": p.keyframe is not None,
        "model_id": p.model_id,
    }


def _model(model: Model | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {
        "model_id": model.model_id,
        "name": model.name,
        "backbone": model.backbone,
        "classes": list(model.classes),
        "active": model.active,
        "created_at": utc_iso(model.created_at),
        "metrics": model.metrics,
    }


def _correction(c: Correction) -> dict[str, Any]:
    return {
        "id": c.id,
        "file_id": c.file_id,
        "segment": c.segment,
        "label": c.label,
        "previous_label": c.previous_label,
        "confirmed": c.confirmed,
        "model_id": c.model_id,
        "note": c.note,
        "user": c.user_name,
        "created_at": utc_iso(c.created_at),
    }


def correction_dict(c: Correction) -> dict[str, Any]:
    """A correction as the API returns it."""
    return _correction(c)


def resolve_in_roots(session: Session, row: File, allowed: tuple[Path, ...]) -> Path:
    """The real path of an indexed file, refused unless it lies inside an allowed root (the
    configured ones, else the index's roots) after resolving every symbolic link."""
    root = session.get(Root, row.root_id)
    if root is None:
        raise PathError("the file's root is not recorded", fix="re-index")
    candidate = Path(root.path) / row.relative_path
    roots = allowed or tuple(Path(r.path) for r in session.scalars(select(Root)))
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise PathError("the file is not on disk any more", path=row.relative_path) from exc
    for base in roots:
        try:
            base_real = base.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if (real == base_real or base_real in real.parents) and real.is_file():
            return real
    raise PathError("is outside the served roots", path=row.relative_path, fix="serve its root")
