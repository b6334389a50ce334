"""``/files``: search with filters and cursors, a file's detail, thumbnail, content, similar."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from sqlalchemy import select

from landscape.index.repository import SearchFilters
from landscape.index.schema import File, Prediction, Root

from ..deps import DbSession, Reader, get_state
from ..files import file_detail, list_files, parse_bbox, parse_near, resolve_in_roots

router = APIRouter(tags=["files"])

_MAX_PAGE = 200
#: the largest row id the databases hold (a larger one would be a PostgreSQL error, not a 404)
MAX_ID = 2**31 - 1

FileId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="A file's id.")]


def filters_from_query(
    label: str | None = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    unknown: bool | None = None,
    media: Literal["image", "video", "other"] | None = None,
    status_: Annotated[
        Literal["ok", "error", "missing", "quarantined"] | None, Query(alias="status")
    ] = None,
    taken_after: date | None = None,
    taken_before: date | None = None,
    camera: Annotated[str | None, Query(max_length=200)] = None,
    place: Annotated[str | None, Query(max_length=200)] = None,
    bbox: Annotated[str | None, Query(description="SOUTH,WEST,NORTH,EAST")] = None,
    near: Annotated[str | None, Query(description="LAT,LON,KM")] = None,
    q: Annotated[str | None, Query(max_length=500, description="Text in the path.")] = None,
    model: Annotated[str | None, Query(max_length=64)] = None,
    sort: Literal["newest", "oldest"] = "newest",
    limit: Annotated[int, Query(ge=1, le=_MAX_PAGE)] = 60,
) -> SearchFilters:
    """Every filter of the gallery and ``GET /files``, from query parameters."""
    return SearchFilters(
        label=label or None,
        min_confidence=min_confidence,
        max_confidence=max_confidence,
        unknown=unknown,
        media=media,
        status=status_,
        taken_after=taken_after,
        taken_before=taken_before,
        camera=camera or None,
        place=place or None,
        bbox=parse_bbox(bbox or None),
        near=parse_near(near or None),
        path_contains=q or None,
        model_id=model or None,
        sort=sort,
        limit=limit,
    )


Filters = Annotated[SearchFilters, Depends(filters_from_query)]


@router.get("/files")
def get_files(
    _: Reader, session: DbSession, filters: Filters, cursor: str | None = None
) -> dict[str, Any]:
    """Files matching every filter, newest first (or ``sort=oldest``), one page at a time:
    pass ``next_cursor`` back as ``cursor`` for the next page."""
    hits, next_cursor = list_files(session, filters, cursor)
    return {"items": [h.to_dict() for h in hits], "next_cursor": next_cursor}


def _file(session: DbSession, file_id: int) -> File:
    row = session.get(File, file_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file with id {file_id}")
    return row


@router.get("/files/{file_id}")
def get_file(
    file_id: FileId, _: Reader, session: DbSession, model: str | None = None
) -> dict[str, Any]:
    """One file: metadata, probabilities, model provenance, video timeline, corrections."""
    try:
        return file_detail(session, file_id, model)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file with id {file_id}") from None


@router.get("/files/{file_id}/thumbnail", response_class=FileResponse)
def get_thumbnail(file_id: FileId, request: Request, _: Reader, session: DbSession) -> Response:
    """A small upright JPEG (made once, cached); a video's is its keyframe."""
    from landscape.index.keyframes import keyframe_root

    from ..thumbnails import cached_thumbnail

    state = get_state(request)
    row = _file_and_root(session, file_id)
    headers = {"Cache-Control": "private, max-age=86400"}
    if row.media_type == "video":
        name = session.scalar(
            select(Prediction.keyframe)
            .where(Prediction.file_id == file_id, Prediction.keyframe.is_not(None))
            .order_by(Prediction.segment)
            .limit(1)
        )
        if name is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "this video has no keyframe yet")
        path = keyframe_root(state.engine.url) / name
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, "the keyframe is missing: re-index")
        return FileResponse(path, media_type="image/jpeg", headers=headers)
    if row.media_type != "image" or row.content_hash is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "only images and videos have thumbnails")
    # Confinement first, cached or not: a file that left the served roots has no thumbnail.
    source = resolve_in_roots(session, row, state.roots)
    path = cached_thumbnail(state.settings.thumbnail_dir, row.content_hash, source)
    return _thumbnail_response(request, path, row.content_hash, headers)


def _file_and_root(session: DbSession, file_id: int) -> File:
    """The file row with its root loaded in the same SELECT (the root check then asks the
    session, not the database)."""
    found = session.execute(
        select(File, Root).outerjoin(Root, Root.id == File.root_id).where(File.id == file_id)
    ).first()
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file with id {file_id}")
    row: File = found[0]
    return row


def _thumbnail_response(
    request: Request, path: Path, content_hash: str, headers: dict[str, str]
) -> Response:
    """The thumbnail's bytes, or a 304 when the client holds them (``If-None-Match``).

    A thumbnail is a few tens of kB read here, in the route's thread: ``FileResponse`` would
    stat, open, read and close it in four more thread hops. The ETag is weak (the same content
    and size give the same picture, not always the same bytes after a Pillow upgrade)."""
    from ..thumbnails import SIDE

    etag = f'W/"{content_hash}-{SIDE}"'
    headers = {**headers, "ETag": etag}
    # Weak comparison (RFC 9110 13.1.2): the tags match whether or not either is marked W/.
    sent = {
        tag.strip().removeprefix("W/")
        for tag in request.headers.get("if-none-match", "").split(",")
    }
    if etag.removeprefix("W/") in sent or "*" in sent:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(path.read_bytes(), media_type="image/jpeg", headers=headers)


@router.get("/files/{file_id}/content", response_class=FileResponse)
def get_content(file_id: FileId, request: Request, _: Reader, session: DbSession) -> FileResponse:
    """The original bytes (only from the served roots), with HTTP range requests."""
    row = _file(session, file_id)
    path = resolve_in_roots(session, row, get_state(request).roots)
    return FileResponse(
        path,
        media_type=row.mime or "application/octet-stream",
        headers={"Content-Disposition": "inline", "Cache-Control": "private, max-age=3600"},
    )


@router.get("/files/{file_id}/similar")
def get_similar(
    file_id: FileId,
    request: Request,
    _: Reader,
    session: DbSession,
    filters: Filters,
) -> dict[str, Any]:
    """The files most like this one (cosine similarity of embeddings, same model), with every
    filter of ``GET /files``; ``limit`` is how many."""
    from landscape.index.similarity import search_like

    _file(session, file_id)
    cache = get_state(request).settings.cache_dir / "vectors"
    hits = search_like(session, str(file_id), filters, cache)
    return {"items": [h.to_dict() for h in hits]}
