"""``/files/{id}/corrections``, ``/corrections`` and ``/review``: people's labels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from landscape.index.reviews import add_correction, list_corrections, review_queue

from ..deps import DbSession, Reader, Writer
from ..files import correction_dict
from .files import MAX_ID, FileId

router = APIRouter(tags=["review"])


class CorrectionIn(BaseModel):
    """A label for a file (or a video segment); the model's own label confirms it."""

    label: str = Field(min_length=1, max_length=128)
    note: str | None = Field(None, max_length=2000)
    segment: int = Field(0, ge=0)


@router.post("/files/{file_id}/corrections", status_code=status.HTTP_201_CREATED)
def post_correction(
    file_id: FileId, body: CorrectionIn, who: Writer, session: DbSession
) -> dict[str, Any]:
    """Record a correction (or confirmation) by the caller against the active model."""
    try:
        row = add_correction(session, who, file_id, body.label, body.note, body.segment)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file with id {file_id}") from None
    session.commit()
    return correction_dict(row)


@router.get("/corrections")
def get_corrections(
    _: Reader,
    session: DbSession,
    label: str | None = None,
    user: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Page after this correction id.")
    ] = None,
) -> dict[str, Any]:
    """Corrections and confirmations, newest first."""
    rows = list_corrections(session, label=label, user=user, limit=limit, before_id=before)
    return {
        "items": [correction_dict(r) for r in rows],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }


@router.get("/review")
def get_review(
    _: Reader,
    session: DbSession,
    label: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The review queue: unreviewed files the model is least sure of, unknowns first."""
    return {"items": review_queue(session, label=label, limit=limit)}
