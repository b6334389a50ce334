"""The API's routers, one per resource; :func:`api_router` joins them under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["api_router"]


def api_router() -> APIRouter:
    """Every API route, under ``/api/v1``."""
    from . import admin, files, models, reviews, uploads

    router = APIRouter(prefix="/api/v1")
    for module in (files, uploads, reviews, models, admin):
        router.include_router(module.router)
    return router
