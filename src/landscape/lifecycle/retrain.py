"""``retrain``: reviewed files → a candidate fine-tuned from the base → compared → registered.

The candidate is registered **inactive** with its comparison against the base on the same
held-out reviewed files; a person promotes it (``landscape registry promote``) or discards it.
Nothing in the index changes until the very last step, one transaction, so a retrain that fails
or is killed leaves the active model and every prediction as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from landscape.errors import UserError
from landscape.index.accounts import audit
from landscape.index.db import session_factory
from landscape.index.registry import active_model, add_bundle
from landscape.index.schema import Model

from .calibrate import match_calibration
from .compare import compare_models
from .dataset import RetrainData, build_retrain_data

__all__ = ["RetrainOptions", "RetrainResult", "retrain"]

STEPS = 5
Report = Callable[[int, str], None]


class RetrainOptions(BaseModel):
    """How a retrain builds its data and trains (CLI flags of ``landscape retrain``)."""

    model_config = ConfigDict(extra="forbid")

    base: str = Field("active", description="Model id to fine-tune from (default: the active).")
    extra_data: Path | None = Field(
        None,
        description="Extra training images (a dataset folder or CSV); default: the "
        "base bundle's own training data when it is still present.",
    )
    use_base_data: bool = Field(True, description="Add the base bundle's own training data.")
    out: Path | None = Field(None, description="Run directory (default: HOME/runs/retrain-…).")
    holdout: float = Field(0.3, gt=0, lt=1, description="Share of reviewed files held out.")
    min_per_class: int = Field(5, ge=2, description="Reviewed files needed per reviewed class.")
    head_epochs: int = Field(3, ge=1, description="Head-only epochs.")
    epochs: int = Field(2, ge=1, description="Epochs with the deepest block unfrozen.")
    unfreeze: str = Field("deepest:1", description="Blocks trained after the head epochs.")
    lr: float = Field(1e-3, gt=0, description="Learning rate of the head.")
    batch_size: int = Field(32, ge=1)
    pseudo_labels: bool = Field(False, description="Add the base's confident predictions.")
    min_confidence: float = Field(0.9, gt=0, le=1, description="Pseudo-label confidence floor.")
    max_extra_per_class: int | None = Field(100, ge=1, description="Cap extra images per class.")
    min_calibration_files: int = Field(
        10, ge=2, description="Validation files needed to fit the base's calibration anew."
    )
    seed: int = 0
    num_workers: int | None = None
    progress: bool = True


class RetrainResult(BaseModel):
    """What a retrain produced."""

    run_dir: Path
    bundle: Path
    model_id: str
    base_model_id: str
    comparison: dict[str, Any]
    counts: dict[str, int]


def _base(engine: Engine, wanted: str) -> tuple[str, Path, list[str], dict[str, Any]]:
    with session_factory(engine)() as session:
        row = active_model(session) if wanted == "active" else session.get(Model, wanted)
        if row is None:
            what = "no active model" if wanted == "active" else f"unknown model {wanted!r}"
            raise UserError(
                f"{what} to retrain from",
                fix="see `landscape registry list`; register one with `landscape registry add`",
            )
        path = Path(row.bundle_path)
        if not path.exists():
            raise UserError(
                f"the bundle of {row.model_id} is gone",
                path=path,
                fix="restore it or `landscape registry add` it again",
            )
        from landscape.models.bundle import load_bundle

        meta = load_bundle(path).meta
        return row.model_id, path, list(row.classes), meta


def _extra_folder(options: RetrainOptions, meta: dict[str, Any]) -> Path | None:
    if options.extra_data is not None:
        if not options.extra_data.exists():
            raise UserError("does not exist", path=options.extra_data, fix="check --extra-data")
        return options.extra_data
    root = (meta.get("dataset") or {}).get("root")
    if options.use_base_data and root and Path(root).exists():
        return Path(root)
    return None


def _train(
    options: RetrainOptions, data: RetrainData, run_dir: Path, base: Path, meta: dict[str, Any]
) -> Path:
    from landscape.config import FineTune, TrainConfig
    from landscape.train.init_from import base_head_spec
    from landscape.train.trainer import fit

    manifest = data.write(run_dir / "data")
    cfg = TrainConfig(
        data=manifest,
        out=run_dir / "train",
        backbone=meta["backbone"],
        init=base,
        head=base_head_spec(meta),
        fine_tune=FineTune(head_epochs=options.head_epochs, unfreeze=options.unfreeze),
        epochs=options.epochs,
        batch_size=options.batch_size,
        test_fraction=0.0,
        seed=options.seed,
        num_workers=options.num_workers,
        progress=options.progress,
        optim={"lr": options.lr},
    )
    return fit(cfg).bundle


def _default_out() -> Path:
    from landscape.settings import get_settings

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return get_settings().data_dir / "runs" / f"retrain-{stamp}"


def retrain(
    engine: Engine,
    options: RetrainOptions,
    *,
    user: str = "cli",
    report: Report | None = None,
) -> RetrainResult:
    """Build the data, fine-tune, compare on the held-out files, register the candidate."""
    say = report or (lambda step, message: None)
    base_id, base_path, base_classes, meta = _base(engine, options.base)
    run_dir = options.out or _default_out()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError("exists and is not empty", path=run_dir, fix="choose a new --out")
    say(1, f"collecting reviewed files from {engine.url.render_as_string()} (base {base_id})")
    with session_factory(engine)() as session:
        data = build_retrain_data(
            session,
            base_classes,
            holdout=options.holdout,
            min_per_class=options.min_per_class,
            seed=options.seed,
            extra_data=_extra_folder(options, meta),
            pseudo_model=base_id if options.pseudo_labels else None,
            min_confidence=options.min_confidence,
            max_extra_per_class=options.max_extra_per_class,
        )
    counts = {**data.counts, "train": len(data.train)}
    say(2, "training on " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    bundle = _train(options, data, run_dir, base_path, meta)
    calibration = match_calibration(
        bundle,
        meta,
        run_dir / "train" / "split.csv",
        run_dir / "calibration",
        min_files=options.min_calibration_files,
    )
    say(3, f"scoring base and candidate on {len(data.held_out)} held-out reviewed files")
    from landscape.models.bundle import load_bundle

    candidate_id = load_bundle(bundle).model_id
    comparison = compare_models(
        data.held_out, data.classes, (base_id, base_path), (candidate_id, bundle)
    )
    comparison["counts"] = counts
    comparison["dropped_near_duplicates"] = data.dropped_near_duplicates
    comparison["calibration"] = calibration
    (run_dir / "comparison.json").write_text(json.dumps(comparison, indent=2) + "\n")
    say(4, f"registering candidate {candidate_id} (inactive)")
    with session_factory(engine)() as session, session.begin():
        row = add_bundle(session, bundle, user)
        row.metrics = {**(row.metrics or {}), "comparison": comparison, "base_model_id": base_id}
        audit(session, user, "retrain", candidate_id, {"base": base_id, "counts": counts})
    base_acc = comparison["base"]["accuracy"]
    cand_acc = comparison["candidate"]["accuracy"]
    say(5, f"held-out accuracy: base {base_acc:.3f} → candidate {cand_acc:.3f}")
    return RetrainResult(
        run_dir=run_dir,
        bundle=bundle,
        model_id=candidate_id,
        base_model_id=base_id,
        comparison=comparison,
        counts=counts,
    )
