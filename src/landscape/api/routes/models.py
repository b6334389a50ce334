"""The model lifecycle over HTTP: upload a bundle, activate (and reclassify), roll back,
discard, retrain as a background job, and follow jobs.

Training never runs in the service: ``POST /retrain`` launches ``landscape retrain`` in a
process of its own (:mod:`..jobs`) and answers 202 with the job to follow.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, UploadFile, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from landscape.errors import UserError
from landscape.index.jobs import JobConflictError, job_dict, list_jobs, read_job

from ..deps import Admin, DbSession, Reader, Writer, get_state
from ..jobs import launch_job
from ..uploads import UploadError, receive
from .files import MAX_ID

router = APIRouter(tags=["models"])

ModelId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[\w.\-]+$")]
_MAX_BUNDLE_MB = 2000


class ActivateRequest(BaseModel):
    """Options of an activation."""

    model_config = ConfigDict(extra="forbid")

    reclassify: bool = Field(
        False, description="Then label the whole index with it, as a background job."
    )


class RetrainRequest(BaseModel):
    """What ``landscape retrain`` is asked to do (its defaults when left out)."""

    model_config = ConfigDict(extra="forbid")

    base: str = Field("active", max_length=64, pattern=r"^[\w.\-]+$")
    holdout: float = Field(0.3, ge=0.05, le=0.9)
    head_epochs: int = Field(3, ge=1, le=50)
    epochs: int = Field(2, ge=1, le=50)
    use_base_data: bool = True
    pseudo_labels: bool = False
    min_confidence: float = Field(0.9, ge=0.0, le=1.0)
    min_per_class: int = Field(5, ge=2, le=1000)


def _known(session: Any, model_id: str) -> None:
    from landscape.index.schema import Model

    if session.get(Model, model_id) is None:
        raise LookupError(model_id)


def _model(session: Any, model_id: str) -> dict[str, Any]:
    from landscape.index.registry import list_models

    for item in list_models(session):
        if item["model_id"] == model_id:
            return {k: v for k, v in item.items() if k != "bundle_path"}
    raise LookupError(model_id)


@router.post("/models", status_code=status.HTTP_201_CREATED)
def post_model(file: UploadFile, request: Request, who: Admin, session: DbSession) -> Any:
    """Register a bundle uploaded as a ``.landscape`` file (multipart field ``file``; its
    checksums verified; inactive unless it is the first model). Admins only."""
    from landscape.index.registry import add_bundle
    from landscape.models.bundle import load_bundle

    settings = get_state(request).settings
    folder = settings.data_dir / "models"
    try:
        tmp, _, _ = receive(file.file, folder / "incoming", _MAX_BUNDLE_MB * 1_000_000)
    except UploadError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    bundle_file = tmp.with_suffix(".landscape")
    tmp.rename(bundle_file)
    try:
        bundle = load_bundle(bundle_file)
    except UserError as exc:
        bundle_file.unlink(missing_ok=True)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"not a usable bundle: {str(exc).split(': ', 1)[-1]} (upload the .landscape file "
            "of a run: `landscape export` or the run's bundle zipped)",
        ) from None
    final = folder / f"{bundle.model_id}.landscape"
    bundle_file.replace(final)
    row = add_bundle(session, final, who.name)
    session.commit()
    return _model(session, row.model_id)


@router.post("/models/{model_id}/activate")
def post_activate(
    model_id: ModelId,
    request: Request,
    who: Admin,
    session: DbSession,
    body: ActivateRequest | None = None,
) -> dict[str, Any]:
    """Make a model the active one (promotion: atomic, audited); with ``reclassify`` the whole
    index is then labelled with it by a background job (``job`` in the answer). Admins only."""
    from landscape.index.registry import activate

    state = get_state(request)
    _known(session, model_id)
    activate(session, model_id, who.name, reason="promote")
    session.commit()
    state.follow_active_model()
    job = None
    if body is not None and body.reclassify:
        job = _launch(
            request,
            "reclassify",
            ["registry", "reclassify", model_id, "--json"],
            {"model_id": model_id},
            who.name,
        )
    return {"active": _model(session, model_id), "job": job}


@router.post("/models/rollback")
def post_rollback(request: Request, who: Admin, session: DbSession) -> dict[str, Any]:
    """Activate the model that was active before the current one. Admins only."""
    from landscape.index.registry import rollback

    row = rollback(session, who.name)
    session.commit()
    get_state(request).follow_active_model()
    return {"active": _model(session, row.model_id)}


@router.delete("/models/{model_id}")
def delete_model(model_id: ModelId, who: Admin, session: DbSession) -> dict[str, Any]:
    """Discard a model that is neither active nor labelling files (a candidate nobody
    promoted); 409 otherwise. Admins only."""
    from landscape.index.registry import remove_model

    _known(session, model_id)
    try:
        plan = remove_model(session, model_id, user=who.name)
    except UserError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
    return {"removed": model_id, "predictions_deleted": plan.predictions}


def _launch(
    request: Request, kind: str, command: list[str], args: dict[str, Any], user: str
) -> dict[str, Any]:
    state = get_state(request)
    try:
        return launch_job(state.sessions, state.settings, kind, command, args, user)
    except JobConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED)
def post_retrain(request: Request, who: Writer, body: RetrainRequest | None = None) -> Any:
    """Start ``landscape retrain`` as a background job (one at a time: 409 while one runs);
    follow it with ``GET /jobs/{id}``. The candidate is registered inactive with its
    comparison against the base; promote it with ``POST /models/{id}/activate``."""
    options = body or RetrainRequest()
    command = [
        "retrain", "--json", "--no-progress", "--as-user", who.name,
        "--base", options.base,
        "--holdout", str(options.holdout),
        "--head-epochs", str(options.head_epochs),
        "--epochs", str(options.epochs),
        "--min-per-class", str(options.min_per_class),
        "--min-confidence", str(options.min_confidence),
    ]  # fmt: skip
    if not options.use_base_data:
        command.append("--no-base-data")
    if options.pseudo_labels:
        command.append("--pseudo-labels")
    return _launch(request, "retrain", command, options.model_dump(), who.name)


@router.get("/jobs")
def get_jobs(_: Reader, session: DbSession) -> dict[str, Any]:
    """The newest background jobs first."""
    return {"items": [job_dict(job) for job in list_jobs(session)]}


@router.get("/jobs/{job_id}")
def get_job(
    job_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], _: Reader, session: DbSession
) -> dict[str, Any]:
    """A job's state (running, succeeded, failed), progress step, log tail, error and result."""
    job = read_job(session, job_id)
    if job is None:
        raise LookupError(job_id)
    return job_dict(job)
