"""``/stats``, ``/models``, ``/audit`` and ``/health``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select, text

from landscape.index.reviews import index_stats
from landscape.index.schema import AuditEntry

from ..deps import Admin, DbSession, Reader
from ..files import utc_iso
from .files import MAX_ID

router = APIRouter()


@router.get("/health", tags=["service"])
def get_health(session: DbSession) -> dict[str, Any]:
    """Whether the service and its database answer (no authentication)."""
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/stats", tags=["service"])
def get_stats(_: Reader, session: DbSession) -> dict[str, Any]:
    """Counts per label, per month and per media type, the unknown rate, corrections."""
    return index_stats(session)


@router.get("/models", tags=["models"])
def get_models(_: Reader, session: DbSession) -> dict[str, Any]:
    """The models the index knows, the active one first, with their metrics, training data
    fingerprint and how many files each has labelled."""
    from landscape.index.registry import list_models

    items = [
        {key: value for key, value in model.items() if key != "bundle_path"}
        for model in list_models(session)
    ]
    return {"items": items}


@router.get("/audit", tags=["service"])
def get_audit(
    _: Admin,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    """Who changed which label, model or user, and when (newest first; admins only)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(session.scalars(query))
    return {
        "items": [
            {
                "id": r.id,
                "at": utc_iso(r.at),
                "user": r.user_name,
                "action": r.action,
                "target": r.target,
                "details": r.details,
            }
            for r in rows
        ],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }
