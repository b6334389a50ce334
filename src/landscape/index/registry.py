"""Models the index knows: registered from bundles, one of them active (``index``'s default)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from landscape.errors import UserError

from .schema import Model

__all__ = ["ModelConflictError", "active_model", "register_bundle", "set_active"]


class ModelConflictError(UserError):
    """A bundle claims a model id the index knows with other classes."""


def _created_at(meta: dict[str, Any]) -> datetime | None:
    value = meta.get("created_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def register_bundle(
    session: Session, bundle: Any, path: Path | None = None, *, sha256: str | None = None
) -> Model:
    """The :class:`Model` row of a loaded bundle, added when new.

    The first model registered becomes active. A bundle whose model id is known with other
    classes is refused: its predictions would be mixed with another model's under one id.
    """
    model_id = bundle.model_id
    path = Path(path if path is not None else bundle.path)
    if sha256 is None and path.is_file():
        from landscape.data.io import file_sha256

        sha256 = file_sha256(path)
    row = session.get(Model, model_id)
    if row is not None:
        if list(row.classes) != list(bundle.classes):
            raise ModelConflictError(
                f"model {model_id} is recorded with classes {', '.join(row.classes)} but the "
                f"bundle has {', '.join(bundle.classes)}",
                path=path,
                fix="use a bundle with its own model id (retrain or re-export it)",
            )
        return row
    meta = bundle.meta
    has_active = session.scalar(select(Model.model_id).where(Model.active).limit(1)) is not None
    row = Model(
        model_id=model_id,
        name=meta.get("name") or Path(path).name,
        backbone=(meta.get("training") or {}).get("backbone") or meta.get("backbone"),
        classes=list(bundle.classes),
        metrics=meta.get("metrics"),
        bundle_path=str(Path(path).resolve()),
        bundle_sha256=sha256,
        created_at=_created_at(meta),
        active=not has_active,
    )
    session.add(row)
    session.flush()
    return row


def active_model(session: Session) -> Model | None:
    """The active model, if one is recorded."""
    return session.scalar(select(Model).where(Model.active).limit(1))


def set_active(session: Session, model_id: str) -> Model:
    """Make ``model_id`` the only active model."""
    row = session.get(Model, model_id)
    if row is None:
        raise UserError(f"unknown model {model_id!r}", fix="see `landscape registry list`")
    session.execute(update(Model).where(Model.model_id != model_id).values(active=False))
    row.active = True
    session.flush()
    return row
