"""Queries of the index, in one place: what ``landscape search`` (and the coming API) ask.

:func:`search` filters files by label (of the active model, or a given one), confidence,
unknown flag, capture date, distance from a point, place, camera, media type, status and path,
and returns plain :class:`SearchHit` records (absolute paths) ordered newest capture first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from .schema import File, MediaMetadata, Model, Prediction, Root

__all__ = ["SearchFilters", "SearchHit", "haversine_km", "search"]

_EARTH_KM = 6371.0088


@dataclass(frozen=True)
class SearchFilters:
    """Every filter of ``landscape search``; ``None`` means "any"."""

    label: str | None = None
    min_confidence: float | None = None
    unknown: bool | None = None
    taken_after: date | datetime | None = None
    taken_before: date | datetime | None = None
    near: tuple[float, float, float] | None = None  # latitude, longitude, radius km
    place: str | None = None
    camera: str | None = None
    media: str | None = None
    status: str | None = None
    path_contains: str | None = None
    model_id: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class SearchHit:
    """One file as search returns it."""

    id: int
    path: str
    media_type: str
    status: str
    label: str | None
    confidence: float | None
    is_unknown: bool | None
    model_id: str | None
    captured_at: str | None
    latitude: float | None
    longitude: float | None
    place: str | None
    camera: str | None
    size: int
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _as_datetime(value: date | datetime, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    base = datetime(value.year, value.month, value.day)
    return base.replace(hour=23, minute=59, second=59, microsecond=999999) if end else base


def _bounding_box(lat: float, lon: float, km: float) -> tuple[float, float, float, float]:
    """A box containing the circle: an index-friendly first cut before the exact distance."""
    dlat = math.degrees(km / _EARTH_KM)
    cos = max(math.cos(math.radians(lat)), 1e-6)
    dlon = min(180.0, math.degrees(km / (_EARTH_KM * cos)))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _model_id(session: Session, filters: SearchFilters) -> str | None:
    if filters.model_id is not None:
        return filters.model_id
    return session.scalar(select(Model.model_id).where(Model.active).limit(1))


def _query(filters: SearchFilters, model_id: str | None) -> Select:
    pred = aliased(Prediction)
    on = and_(pred.file_id == File.id, pred.segment == 0)
    # No model recorded yet: join on an id no model has, so every file comes without a label.
    on = and_(on, pred.model_id == (model_id if model_id is not None else ""))
    query = (
        select(File, Root.path, MediaMetadata, pred)
        .join(Root, Root.id == File.root_id)
        .outerjoin(MediaMetadata, MediaMetadata.file_id == File.id)
        .outerjoin(pred, on)
    )
    conditions: list[Any] = []
    if filters.label is not None:
        conditions.append(pred.label == filters.label)
    if filters.min_confidence is not None:
        conditions.append(pred.confidence >= filters.min_confidence)
    if filters.unknown is not None:
        conditions.append(pred.is_unknown == filters.unknown)
    if filters.taken_after is not None:
        conditions.append(MediaMetadata.captured_at >= _as_datetime(filters.taken_after, end=False))
    if filters.taken_before is not None:
        conditions.append(MediaMetadata.captured_at <= _as_datetime(filters.taken_before, end=True))
    if filters.near is not None:
        lat_min, lat_max, lon_min, lon_max = _bounding_box(*filters.near)
        conditions += [
            MediaMetadata.latitude.between(lat_min, lat_max),
            MediaMetadata.longitude.between(lon_min, lon_max),
        ]
    if filters.place is not None:
        like = f"%{filters.place.lower()}%"
        conditions.append(
            or_(
                func.lower(MediaMetadata.place_city).like(like),
                func.lower(MediaMetadata.place_region).like(like),
                func.lower(MediaMetadata.place_country).like(like),
            )
        )
    if filters.camera is not None:
        like = f"%{filters.camera.lower()}%"
        conditions.append(
            or_(
                func.lower(MediaMetadata.camera_model).like(like),
                func.lower(MediaMetadata.camera_make).like(like),
            )
        )
    if filters.media is not None:
        conditions.append(File.media_type == filters.media)
    if filters.status is not None:
        conditions.append(File.status == filters.status)
    if filters.path_contains is not None:
        conditions.append(File.relative_path.contains(filters.path_contains, autoescape=True))
    if conditions:
        query = query.where(and_(*conditions))
    return query.order_by(MediaMetadata.captured_at.desc().nulls_last(), File.id)


def search(session: Session, filters: SearchFilters) -> list[SearchHit]:
    """Files matching every filter, newest capture first, at most ``filters.limit``."""
    model_id = _model_id(session, filters)
    query = _query(filters, model_id)
    hits: list[SearchHit] = []
    # The bounding box is a superset of the circle: read on until the page is full.
    for file, root, media, pred in session.execute(query.execution_options(yield_per=500)):
        if filters.near is not None and media is not None:
            lat, lon, km = filters.near
            if media.latitude is None or media.longitude is None:
                continue
            if haversine_km(lat, lon, media.latitude, media.longitude) > km:
                continue
        hits.append(_hit(file, root, media, pred))
        if len(hits) >= filters.limit:
            break
    return hits


def _hit(file: File, root: str, media: MediaMetadata | None, pred: Prediction | None) -> SearchHit:
    place = None
    camera = None
    if media is not None:
        place = ", ".join(p for p in (media.place_city, media.place_country) if p) or None
        camera = " ".join(p for p in (media.camera_make, media.camera_model) if p) or None
    return SearchHit(
        id=file.id,
        path=f"{root.rstrip('/')}/{file.relative_path}",
        media_type=file.media_type,
        status=file.status,
        label=pred.label if pred is not None else None,
        confidence=pred.confidence if pred is not None else None,
        is_unknown=pred.is_unknown if pred is not None else None,
        model_id=pred.model_id if pred is not None else None,
        captured_at=media.captured_at.isoformat() if media and media.captured_at else None,
        latitude=media.latitude if media is not None else None,
        longitude=media.longitude if media is not None else None,
        place=place,
        camera=camera,
        size=file.size,
        error=file.error,
    )
