"""The REST API (FastAPI): ``create_app(settings)`` serves ``/api/v1`` over the index."""

from __future__ import annotations

from .app import create_app
from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
