"""``POST /uploads``: store an image or a video and classify it at once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, UploadFile, status

from ..deps import DbSession, Writer, get_state
from ..files import file_detail
from ..uploads import UploadError, store_upload

router = APIRouter(tags=["uploads"])


@router.post("/uploads", status_code=status.HTTP_201_CREATED)
def post_upload(
    file: UploadFile, request: Request, who: Writer, session: DbSession
) -> dict[str, Any]:
    """Upload one file (multipart field ``file``): its type is read from its bytes, it is
    stored under the upload root, indexed and classified; answers with the file's id and its
    prediction (``label``, ``confidence``, ``probabilities``...)."""
    from landscape.index.accounts import audit

    state = get_state(request)
    settings = state.settings
    limit = int(settings.max_upload_mb * 1e6)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 1_000_000:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"the file is larger than the {settings.max_upload_mb:g} MB limit",
        )
    try:
        stored = store_upload(
            state.engine,
            session,
            file.file,
            file.filename,
            upload_root=settings.upload_root,
            incoming=settings.data_dir / "incoming",
            limit_bytes=limit,
            predictor=state.predictor(),
        )
    except UploadError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    audit(session, who.name, "file.upload", f"file:{stored.file_id}", {"name": file.filename})
    session.commit()
    detail = file_detail(session, stored.file_id)
    prediction = detail["prediction"] or {}
    return {
        "id": stored.file_id,
        "file_id": stored.file_id,
        "path": detail["path"],
        "media_type": detail["media_type"],
        "label": prediction.get("label"),
        "confidence": prediction.get("confidence"),
        "is_unknown": prediction.get("is_unknown"),
        "probabilities": prediction.get("probabilities"),
        "model_id": prediction.get("model_id"),
        "segments": detail["segments"],
    }
