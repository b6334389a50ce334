"""People's labels: corrections and confirmations, the review queue, and the index's figures.

A correction records who labelled which file (or video segment) as what, when, and which
model's prediction it reviewed; a label equal to the model's is a *confirmation*. The newest
correction of a file is its reviewed label. The review queue lists the files the active model
is least sure of — unknowns first, then by the margin between its two most likely classes —
that nobody has reviewed yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from landscape.errors import UserError

from .accounts import Identity, audit
from .repository import SearchFilters, resolve_model_id
from .schema import Correction, File, Model, Prediction, Root

__all__ = ["add_correction", "index_stats", "list_corrections", "review_queue"]

_MAX_NOTE = 2000


def add_correction(
    session: Session,
    who: Identity,
    file_id: int,
    label: str,
    note: str | None = None,
    segment: int = 0,
) -> Correction:
    """Record ``who``'s label for a file (segment 0) or a video segment, against the active
    model's prediction; the label must be one of that model's classes. Audited; not
    committed. Raises :class:`LookupError` for an unknown file."""
    row = session.get(File, file_id)
    if row is None:
        raise LookupError(file_id)
    model_id = resolve_model_id(session, SearchFilters())
    model = session.get(Model, model_id) if model_id else None
    label = label.strip()
    if model is not None and label not in model.classes:
        raise UserError(
            f"{label!r} is not a class of the active model",
            fix=f"use one of: {', '.join(model.classes)}",
        )
    if not label or len(label) > 128 or "\x00" in label:
        raise UserError("the label is empty or too long", fix="use a class name")
    if note is not None and len(note) > _MAX_NOTE:
        raise UserError(f"the note is longer than {_MAX_NOTE} characters", fix="shorten it")
    if note is not None and "\x00" in note:
        # PostgreSQL cannot store it (a failed insert otherwise).
        raise UserError("the note holds a NUL character", fix="remove it")
    prediction = (
        session.scalar(
            select(Prediction).where(
                Prediction.file_id == file_id,
                Prediction.model_id == model_id,
                Prediction.segment == segment,
            )
        )
        if model_id
        else None
    )
    if segment and prediction is None:
        raise UserError(f"the file has no segment {segment}", fix="use a segment of its timeline")
    previous = prediction.label if prediction is not None else None
    correction = Correction(
        file_id=file_id,
        segment=segment,
        label=label,
        previous_label=previous,
        model_id=model_id,
        confirmed=previous == label,
        note=note or None,
        user_id=who.user_id,
        user_name=who.name,
    )
    session.add(correction)
    audit(
        session,
        who.name,
        "label.confirm" if correction.confirmed else "label.correct",
        f"file:{file_id}" + (f"#{segment}" if segment else ""),
        {"label": label, "previous": previous, "model_id": model_id},
    )
    session.flush()
    return correction


def list_corrections(
    session: Session,
    *,
    label: str | None = None,
    user: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Correction]:
    """Corrections, newest first (``before_id``: the page after that one)."""
    query = select(Correction).order_by(Correction.id.desc()).limit(limit)
    if label is not None:
        query = query.where(Correction.label == label)
    if user is not None:
        query = query.where(Correction.user_name == user)
    if before_id is not None:
        query = query.where(Correction.id < before_id)
    return list(session.scalars(query))


def _margin(probabilities: dict[str, Any]) -> float:
    top = sorted((float(v) for v in probabilities.values()), reverse=True)
    return top[0] - top[1] if len(top) > 1 else (top[0] if top else 0.0)


def review_queue(
    session: Session, *, label: str | None = None, limit: int = 50, model_id: str | None = None
) -> list[dict[str, Any]]:
    """Files the model is least sure of and nobody has reviewed: unknowns first, then the
    smallest margin between the two most likely classes (ties: lowest confidence)."""
    model_id = model_id or resolve_model_id(session, SearchFilters())
    if model_id is None:
        return []
    reviewed = select(Correction.file_id).where(Correction.segment == 0)
    query = (
        select(Prediction, File.relative_path, File.media_type, Root.path)
        .join(File, File.id == Prediction.file_id)
        .join(Root, Root.id == File.root_id)
        .where(
            Prediction.model_id == model_id,
            Prediction.segment == 0,
            File.status != "missing",
            File.id.not_in(reviewed),
        )
        .order_by(case((Prediction.is_unknown, 0), else_=1), Prediction.confidence, File.id)
    )
    if label is not None:
        query = query.where(Prediction.label == label)
    # The margin needs the probabilities: rank a bounded candidate set by confidence in SQL
    # (low confidence implies a low margin for the top class), then by margin here.
    rows = session.execute(query.limit(max(limit * 4, 200))).all()
    items = [
        {
            "file_id": pred.file_id,
            "path": f"{root.rstrip('/')}/{relative}",
            "media_type": media,
            "label": pred.label,
            "confidence": pred.confidence,
            "is_unknown": pred.is_unknown,
            "margin": _margin(pred.probabilities),
            "probabilities": pred.probabilities,
            "model_id": model_id,
        }
        for pred, relative, media, root in rows
    ]
    items.sort(key=lambda i: (not i["is_unknown"], i["margin"], i["confidence"], i["file_id"]))
    return items[:limit]


def index_stats(session: Session) -> dict[str, Any]:
    """Counts per label (active model), per month, per media type; the unknown rate; the
    corrections per label."""
    model_id = resolve_model_id(session, SearchFilters())
    present = File.status != "missing"
    media = dict(
        session.execute(
            select(File.media_type, func.count()).where(present).group_by(File.media_type)
        ).all()
    )
    labels: dict[str, int] = {}
    unknown = total = 0
    if model_id is not None:
        rows = session.execute(
            select(Prediction.label, Prediction.is_unknown, func.count())
            .join(File, File.id == Prediction.file_id)
            .where(Prediction.model_id == model_id, Prediction.segment == 0, present)
            .group_by(Prediction.label, Prediction.is_unknown)
        ).all()
        for name, is_unknown, count in rows:
            labels[name] = labels.get(name, 0) + count
            total += count
            unknown += count if is_unknown else 0
    months: dict[str, dict[str, int]] = {}
    if model_id is not None:
        taken = session.execute(
            select(File.taken_at, Prediction.label)
            .join(Prediction, and_(Prediction.file_id == File.id, Prediction.segment == 0))
            .where(Prediction.model_id == model_id, present, File.taken_at.is_not(None))
            .execution_options(yield_per=5000)
        )
        for when, name in taken:
            if isinstance(when, datetime):
                key = f"{when.year:04d}-{when.month:02d}"
                months.setdefault(key, {}).setdefault(name, 0)
                months[key][name] += 1
    corrections = dict(
        session.execute(
            select(Correction.label, func.count())
            .where(Correction.confirmed.is_(False))
            .group_by(Correction.label)
        ).all()
    )
    confirmations = int(
        session.scalar(select(func.count()).where(Correction.confirmed.is_(True))) or 0
    )
    return {
        "model_id": model_id,
        "files": int(sum(media.values())),
        "media": media,
        "labels": labels,
        "months": dict(sorted(months.items())),
        "unknown_rate": unknown / total if total else 0.0,
        "corrections": corrections,
        "confirmations": confirmations,
    }
