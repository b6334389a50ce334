"""Models the index knows: registered from bundles, one of them active (``index``'s default).

Every activation is recorded (:class:`~.schema.ModelActivation`), so ``rollback`` returns to
the model active before the current one in one step; activations, removals and registrations
are audited. Predictions of every model stay in the index (``landscape search --model ID``)
until the model is removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from landscape.errors import UserError

from .accounts import audit
from .schema import Correction, Model, ModelActivation, Prediction

__all__ = [
    "ModelConflictError",
    "RemovalPlan",
    "activate",
    "active_model",
    "add_bundle",
    "list_models",
    "register_bundle",
    "remove_model",
    "rollback",
    "set_active",
]


class ModelConflictError(UserError):
    """A bundle claims a model id the index knows with other classes."""


def _created_at(meta: dict[str, Any]) -> datetime | None:
    value = meta.get("created_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


_EVALUATION_KEYS = (
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "per_class",
    "confusion_matrix",
    "classes",
    "n_images",
    "split",
    "created_at",
    "ece",
)


def _with_evaluation(metrics: dict[str, Any] | None, path: Path) -> dict[str, Any] | None:
    """The bundle's training metrics plus, under ``evaluation``, the figures of the
    ``landscape evaluate`` report its run keeps beside it (``<run>/eval/metrics.json``:
    accuracy, per-class F1, confusion) — what the dashboard shows for a model."""
    import json

    report = Path(path).parent / "eval" / "metrics.json"
    if not report.is_file():
        return metrics
    try:
        found = json.loads(report.read_text())
    except (OSError, ValueError):
        return metrics
    if not isinstance(found, dict):
        return metrics
    evaluation = {k: found[k] for k in _EVALUATION_KEYS if k in found}
    return {**(metrics or {}), "evaluation": evaluation}


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
        metrics=_with_evaluation(meta.get("metrics"), path),
        bundle_path=str(Path(path).resolve()),
        bundle_sha256=sha256,
        created_at=_created_at(meta),
        active=not has_active,
        data_fingerprint=(meta.get("dataset") or {}).get("fingerprint"),
    )
    session.add(row)
    session.flush()
    if row.active:
        session.add(ModelActivation(model_id=model_id, user_name="index", reason="first"))
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


def add_bundle(session: Session, path: Path, user: str = "cli") -> Model:
    """Register the bundle at ``path`` after verifying its checksums (a one-line error for a
    tampered or truncated one); registering a known model again changes nothing."""
    from landscape.models.bundle import load_bundle

    row = register_bundle(session, load_bundle(path), path)
    audit(session, user, "model.register", row.model_id, {"path": str(path)})
    return row


def activate(session: Session, model_id: str, user: str = "cli", reason: str = "activate") -> Model:
    """Make ``model_id`` the active model and record the activation (audited)."""
    before = active_model(session)
    row = set_active(session, model_id)
    session.add(ModelActivation(model_id=model_id, user_name=user, reason=reason))
    audit(
        session,
        user,
        f"model.{reason}",
        model_id,
        {"previous": before.model_id if before is not None else None},
    )
    session.flush()
    return row


def rollback(session: Session, user: str = "cli") -> Model:
    """Activate the model that was active before the current one."""
    current = active_model(session)
    history = session.scalars(
        select(ModelActivation.model_id).order_by(ModelActivation.id.desc())
    ).all()
    for model_id in history:
        if current is not None and model_id == current.model_id:
            continue
        if session.get(Model, model_id) is not None:
            return activate(session, model_id, user, reason="rollback")
    raise UserError(
        "there is no earlier active model to roll back to",
        fix="activate one with `landscape registry activate ID`",
    )


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 with its UTC offset (SQLite hands back naive datetimes: they are UTC)."""
    if moment is None:
        return None
    from datetime import UTC

    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def list_models(session: Session) -> list[dict[str, Any]]:
    """Every registered model, the active one first: metrics, training data fingerprint,
    dates, and how many files it has labelled."""
    counts = dict(
        session.execute(
            select(Prediction.model_id, func.count())
            .where(Prediction.segment == 0)
            .group_by(Prediction.model_id)
        ).all()
    )
    rows = session.scalars(select(Model).order_by(Model.active.desc(), Model.registered_at))
    return [
        {
            "model_id": m.model_id,
            "active": m.active,
            "name": m.name,
            "backbone": m.backbone,
            "classes": list(m.classes),
            "metrics": m.metrics,
            "data_fingerprint": m.data_fingerprint,
            "created_at": _iso(m.created_at),
            "registered_at": _iso(m.registered_at),
            "bundle_path": m.bundle_path,
            "predictions": int(counts.get(m.model_id, 0)),
        }
        for m in rows
    ]


@dataclass(frozen=True)
class RemovalPlan:
    """What removing a model deletes: its predictions (files labelled) and their keyframes."""

    model_id: str
    predictions: int
    files: int
    keyframes: tuple[str, ...]


def remove_model(
    session: Session, model_id: str, *, force: bool = False, user: str = "cli"
) -> RemovalPlan:
    """Forget a model: refused while it is active, and while it has predictions unless
    ``force`` (then they go too; the corrections that reviewed it stay, naming it). Returns
    what was deleted; the caller deletes the keyframe files after committing."""
    row = session.get(Model, model_id)
    if row is None:
        raise UserError(f"unknown model {model_id!r}", fix="see `landscape registry list`")
    if row.active:
        raise UserError(
            f"{model_id} is the active model",
            fix="activate another (`landscape registry activate ID` or `rollback`) first",
        )
    mine = Prediction.model_id == model_id
    predictions = int(session.scalar(select(func.count()).where(mine)) or 0)
    files = int(
        session.scalar(select(func.count(func.distinct(Prediction.file_id))).where(mine)) or 0
    )
    if predictions and not force:
        reviewed = int(
            session.scalar(select(func.count()).where(Correction.model_id == model_id)) or 0
        )
        raise UserError(
            f"{model_id} still labels {files} files ({predictions} predictions; "
            f"{reviewed} reviews name it)",
            fix="pass --force to delete its predictions too",
        )
    keyframes = tuple(
        k
        for k in session.scalars(
            select(Prediction.keyframe).where(mine, Prediction.keyframe.is_not(None))
        )
        if k is not None
    )
    session.execute(delete(Prediction).where(mine))
    session.execute(delete(ModelActivation).where(ModelActivation.model_id == model_id))
    session.delete(row)
    audit(session, user, "model.remove", model_id, {"predictions": predictions})
    session.flush()
    return RemovalPlan(model_id, predictions, files, keyframes)
