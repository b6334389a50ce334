"""The GUI's pages: gallery, file detail (with the correction form), review queue, upload,
dashboard and models (retrain, compare, promote). Each reads the index through the same
functions as the API, in one session."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from landscape.api.deps import Writer, get_state
from landscape.api.files import file_detail, list_files
from landscape.errors import UserError
from landscape.index.repository import SearchFilters
from landscape.index.schema import Correction, File, Model

from ._auth import PageUser
from ._render import render
from ._views import (
    comparison_view,
    evaluation_figures,
    label_bars,
    metadata_rows,
    model_rows,
    month_chart,
    read_gallery_query,
    slot,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: content types a browser shows as they are; other images are shown by their thumbnail
_SHOWABLE = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"})


def _model(session: Session, model_id: str | None = None) -> Model | None:
    if model_id:
        return session.get(Model, model_id)
    return session.scalar(select(Model).where(Model.active).limit(1))


def _tile(hit: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    taken = hit.get("captured_at") or hit.get("taken_at") or ""
    return {
        **hit,
        "name": os.path.basename(hit["path"]) or hit["path"],
        "slot": slot(hit.get("label"), classes),
        "thumb": hit["status"] == "ok" and hit["media_type"] in ("image", "video"),
        "date": taken[:10],
    }


@router.get("/")
def gallery(request: Request, who: PageUser) -> Response:
    """The thumbnail grid with every filter of ``GET /api/v1/files`` in the sidebar."""
    state = get_state(request)
    wanted = read_gallery_query(dict(request.query_params))
    hits: list[dict[str, Any]] = []
    next_cursor: str | None = None
    with state.sessions() as session:
        model = _model(session, wanted.query.model)
        classes = list(model.classes) if model is not None else []
        indexed = int(session.scalar(select(func.count()).select_from(File)) or 0)
        if wanted.filters is not None and indexed:
            try:
                found, next_cursor = list_files(session, wanted.filters, wanted.query.cursor)
                hits = [h.to_dict() for h in found]
            except UserError as exc:
                wanted.error = str(exc)
    return render(
        request,
        "gallery.html",
        400 if wanted.error else 200,
        title="Gallery",
        wanted=wanted,
        values=wanted.values,
        tiles=[_tile(h, classes) for h in hits],
        classes=classes,
        model=model,
        indexed=indexed,
        next_url=wanted.url_with(cursor=next_cursor) if next_cursor else None,
        first_url=wanted.url_with(cursor=None) if wanted.query.cursor else None,
    )


@router.get("/files/{file_id}")
def detail(file_id: int, request: Request, who: PageUser) -> Response:
    """One file: picture or video with its timeline, probabilities, metadata, corrections, the
    correction form and similar files."""
    from landscape.index.similarity import search_like

    state = get_state(request)
    similar: list[dict[str, Any]] = []
    similar_error: str | None = None
    with state.sessions() as session:
        try:
            info = file_detail(session, file_id)
        except LookupError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No file with id {file_id}.") from None
        model = info["model"]
        if model is None:
            active = _model(session)
            classes = list(active.classes) if active is not None else []
        else:
            classes = list(model["classes"])
        if info["prediction"] is not None:
            try:
                hits = search_like(
                    session,
                    str(file_id),
                    SearchFilters(limit=9),
                    state.settings.cache_dir / "vectors",
                )
                similar = [_tile(h.to_dict(), classes) for h in hits if h.id != file_id][:8]
            except UserError as exc:
                similar_error = str(exc)
    prediction = info["prediction"]
    segments = [
        {
            **s,
            "slot": slot(s["label"], classes),
            "span": max(float(s["end"] or 0) - float(s["start"] or 0), 0.1),
        }
        for s in info["segments"]
    ]
    meta = info["metadata"] or {}
    raw_exif = meta.get("exif") if isinstance(meta.get("exif"), dict) else {}
    return render(
        request,
        "detail.html",
        title=info["name"],
        f=info,
        classes=classes,
        prediction=prediction,
        bars=label_bars(prediction["probabilities"] if prediction else None, classes),
        label_slot=slot(prediction["label"] if prediction else None, classes),
        segments=segments,
        rows=metadata_rows(info),
        raw_exif=sorted((str(k), str(v)) for k, v in (raw_exif or {}).items()),
        showable=info["media_type"] == "image" and info["mime"] in _SHOWABLE,
        similar=similar,
        similar_error=similar_error,
        can_write=who.allows("write"),
    )


@router.post("/files/{file_id}/correct")
def correct(
    file_id: int,
    request: Request,
    who: PageUser,
    label: Annotated[str, Form(max_length=128)],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """The detail page's correction form (the session's CSRF token in field ``csrf``)."""
    from landscape.index.reviews import add_correction

    if not who.allows("write"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{who.name} may not change labels.")
    with get_state(request).sessions() as session:
        try:
            add_correction(session, who, file_id, label, note.strip() or None)
        except LookupError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No file with id {file_id}.") from None
        except UserError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        session.commit()
    return RedirectResponse(f"/files/{file_id}#corrections", status.HTTP_303_SEE_OTHER)


@router.get("/review")
def review(request: Request, who: PageUser, label: str | None = None) -> Response:
    """The review queue, walked with the keyboard (``static/review.js``)."""
    from landscape.index.reviews import review_queue

    with get_state(request).sessions() as session:
        model = _model(session)
        classes = list(model.classes) if model is not None else []
        items = review_queue(session, label=label or None, limit=100)
    for item in items:
        item["name"] = os.path.basename(item["path"]) or item["path"]
        item["slot"] = slot(item["label"], classes)
        item["bars"] = label_bars(item["probabilities"], classes)
    return render(
        request,
        "review.html",
        title="Review",
        items=items,
        classes=classes,
        label=label or "",
        can_write=who.allows("write"),
    )


class UndoIn(BaseModel):
    """The correction to take back."""

    correction_id: int


@router.post("/review/undo")
def undo(body: UndoIn, request: Request, who: Writer) -> dict[str, Any]:
    """Take back one of the caller's own decisions, if it is still the file's newest label:
    the correction row is deleted (the file returns to the queue) and the undo is audited."""
    from landscape.index.accounts import audit

    with get_state(request).sessions() as session:
        row = session.get(Correction, body.correction_id)
        if row is None or row.user_id != who.user_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such decision of yours")
        newest = session.scalar(
            select(Correction.id)
            .where(Correction.file_id == row.file_id, Correction.segment == row.segment)
            .order_by(Correction.created_at.desc(), Correction.id.desc())
            .limit(1)
        )
        if newest != row.id:
            raise HTTPException(
                status.HTTP_409_CONFLICT, "someone labelled this file since: reload the page"
            )
        file_id, label = row.file_id, row.label
        session.delete(row)
        audit(
            session,
            who.name,
            "label.undo",
            f"file:{file_id}",
            {"correction_id": body.correction_id, "label": label},
        )
        session.flush()
        reviewed = session.scalar(
            select(Correction.label)
            .where(Correction.file_id == file_id, Correction.segment == 0)
            .order_by(Correction.created_at.desc(), Correction.id.desc())
            .limit(1)
        )
        session.commit()
    return {"undone": body.correction_id, "file_id": file_id, "reviewed_label": reviewed}


@router.get("/upload")
def upload(request: Request, who: PageUser) -> Response:
    """Drop files (or pick them) to upload; ``static/upload.js`` posts each to the API."""
    state = get_state(request)
    with state.sessions() as session:
        model = _model(session)
        classes = list(model.classes) if model is not None else []
    return render(
        request,
        "upload.html",
        title="Upload",
        classes=classes,
        can_write=who.allows("write"),
        max_mb=state.settings.max_upload_mb,
    )


@router.get("/dashboard")
def dashboard(request: Request, who: PageUser) -> Response:
    """Counts per label over time, the unknown rate, corrections per label and the active
    model's evaluation figures."""
    from landscape.index.reviews import index_stats

    with get_state(request).sessions() as session:
        stats = index_stats(session)
        model = _model(session)
        classes = list(model.classes) if model is not None else []
        metrics = dict(model.metrics or {}) if model is not None else {}
        model_info = (
            {
                "model_id": model.model_id,
                "name": model.name,
                "backbone": model.backbone,
                "created_at": model.created_at.isoformat() if model.created_at else None,
            }
            if model is not None
            else None
        )
    labels = stats["labels"]
    total = sum(labels.values()) or 1
    names = [c for c in classes if c in labels] + sorted(n for n in labels if n not in classes)
    label_rows = [
        {
            "label": n,
            "n": labels[n],
            "pct": round(100 * labels[n] / total, 1),
            "corrections": stats["corrections"].get(n, 0),
            "slot": slot(n, classes),
        }
        for n in names
    ]
    extra = sorted(n for n in stats["corrections"] if n not in labels)
    label_rows += [
        {
            "label": n,
            "n": 0,
            "pct": 0.0,
            "corrections": stats["corrections"][n],
            "slot": slot(n, classes),
        }
        for n in extra
    ]
    return render(
        request,
        "dashboard.html",
        title="Dashboard",
        stats=stats,
        label_rows=label_rows,
        chart=month_chart(stats["months"], classes),
        model=model_info,
        classes=classes,
        figures=evaluation_figures(metrics, classes),
    )


@router.get("/models")
def models(request: Request, who: PageUser) -> Response:
    """The registered models side by side, retraining as a background job (``static/models.js``
    follows it), each candidate's comparison with its base, and promote / discard / rollback."""
    from landscape.index.jobs import job_dict, list_jobs
    from landscape.index.registry import list_models

    with get_state(request).sessions() as session:
        found = list_models(session)
        jobs = [job_dict(job) for job in list_jobs(session, limit=8)]
        rows = model_rows(found)
        comparisons = {
            m["model_id"]: m["metrics"]["comparison"]
            for m, row in zip(found, rows, strict=True)
            if row["candidate"]
        }
        ids = {
            c["file_id"]
            for comparison in comparisons.values()
            for c in comparison.get("changed") or []
            if isinstance(c, dict) and isinstance(c.get("file_id"), int)
        }
        found_files = select(File.id, File.media_type).where(File.id.in_(ids))
        present = {fid: media for fid, media in session.execute(found_files)} if ids else {}
    candidates = [
        {"model": row, "cmp": comparison_view(comparisons[row["model_id"]], present)}
        for row in rows
        if row["candidate"]
    ]
    running = [j for j in jobs if j["state"] == "running"]
    return render(
        request,
        "models.html",
        title="Models",
        models=rows,
        active=next((r for r in rows if r["active"]), None),
        candidates=candidates,
        jobs=jobs,
        running=running,
        retrain_running=any(j["kind"] == "retrain" for j in running),
        can_retrain=who.allows("write"),
        can_admin=who.allows("admin"),
    )
