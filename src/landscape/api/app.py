"""The FastAPI application: ``create_app(settings)``.

The database is opened (and migrated) once in the lifespan; the model is loaded once, on first
use, under a lock (:class:`~.deps.AppState`); routes are plain ``def`` functions, so FastAPI
runs them — database reads, decoding, inference — in its thread pool and the event loop never
blocks. Every response carries the security headers of :mod:`.security`; a user mistake is a
JSON ``{"detail": "..."}`` with a 4xx status, never a stack trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from landscape.errors import UserError

from .deps import AppState, Reader, active_bundle_path
from .files import PathError
from .security import SECURITY_HEADERS, LoginThrottle
from .settings import ServiceSettings

__all__ = ["create_app"]

_DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)


def _model_path(state_settings: ServiceSettings, engine: Any) -> Path | None:
    if state_settings.model is not None:
        return state_settings.model
    return active_bundle_path(engine)


def build_state(settings: ServiceSettings) -> AppState:
    """Open the database and gather what the routes share."""
    from landscape.index.db import open_index, session_factory

    engine = open_index(settings.database_url)
    roots = tuple(settings.roots)
    if roots:
        roots = (*roots, settings.upload_root)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        key=settings.signing_key(),
        throttle=LoginThrottle(settings.login_attempts, settings.login_window_s),
        roots=roots,
        model_path=_model_path(settings, engine),
    )
    if settings.model is not None:
        from landscape.index.registry import register_bundle
        from landscape.models.bundle import load_bundle

        with state.sessions() as session:
            register_bundle(session, load_bundle(state.model_path))
            session.commit()
    return state


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The API service: ``/api/v1`` (JSON) and ``/docs`` unless ``settings.docs`` is off
    (:func:`landscape.web.create_site` adds the GUI pages on top)."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not hasattr(app.state, "landscape"):
            app.state.landscape = build_state(settings)
        yield
        app.state.landscape.engine.dispose()

    app = FastAPI(
        title="landscape",
        summary="Landscape context and metadata of a media archive",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind a login like every other route
    )
    # Built now as well, so a TestClient used without its context manager works too.
    app.state.landscape = build_state(settings)
    _install_handlers(app)
    _install_headers(app)
    _install_openapi(app)
    from .routes import api_router

    app.include_router(api_router())
    if settings.docs:
        _install_schema(app)
        _install_docs(app)
    return app


def _install_schema(app: FastAPI) -> None:
    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def schema(_: Reader) -> JSONResponse:
        return JSONResponse(app.openapi())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("landscape")
    except PackageNotFoundError:
        return "0"


def _install_openapi(app: FastAPI) -> None:
    """FastAPI documents a 422 as a list of validation errors; this API's own 422s (a file
    without an embedding, an upload that cannot be read) are one line: document both."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
            if error is not None and "detail" in error.get("properties", {}):
                listed = error["properties"]["detail"]
                error["properties"]["detail"] = {
                    "anyOf": [listed, {"type": "string"}],
                    "title": "Detail",
                }
        return app.openapi_schema or plain()

    app.openapi = openapi  # type: ignore[method-assign]


def _install_handlers(app: FastAPI) -> None:
    def user_error(request: Request, exc: Exception) -> Response:
        code = 404 if isinstance(exc, PathError | LookupError) else 400
        from landscape.index.similarity import SimilarityError

        if isinstance(exc, SimilarityError):
            code = 422
        return JSONResponse({"detail": str(exc)}, status_code=code)

    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(LookupError, user_error)


def _install_headers(app: FastAPI) -> None:
    app.add_middleware(_Guard)


class _Guard:
    """Pure ASGI middleware (no response buffering, unlike ``@app.middleware``): the security
    headers on every response, a 400 for a NUL in the query string (PostgreSQL refuses NUL in
    text), and a JSON 500 without a trace — carrying the headers too — for a failure."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from urllib.parse import unquote_to_bytes

        extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        if scope["path"] == "/docs":
            extra = [
                (k, _DOCS_CSP.encode() if k == b"content-security-policy" else v) for k, v in extra
            ]
        started = False

        async def send_with_headers(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in extra if k not in present),
                ]
            await send(message)

        if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            response: Response = JSONResponse(
                {"detail": "a query parameter holds a NUL character: remove it"},
                status_code=400,
            )
            await response(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            import logging

            logging.getLogger("landscape.api").exception(
                "%s %s failed", scope.get("method"), scope.get("path")
            )
            if started:
                raise
            failure = JSONResponse({"detail": "internal error"}, status_code=500)
            await failure(scope, receive, send_with_headers)


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from the ``swagger-ui-bundle`` package: no CDN, no inline script."""
    import swagger_ui_bundle

    app.mount(
        "/docs-assets",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="docs-assets",
    )
    page = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>landscape API</title><link rel="stylesheet" href="/docs-assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/docs-init.js"></script></body></html>"""
    script = (
        "window.ui = SwaggerUIBundle({url: '/api/v1/openapi.json', dom_id: '#swagger-ui', "
        "persistAuthorization: false});\n"
    )

    @app.get("/docs", include_in_schema=False)
    def docs(_: Reader) -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/docs-init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(script, media_type="text/javascript")
