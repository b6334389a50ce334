"""``create_site(settings)``: the API app with the GUI's pages, its static files and HTML
error pages on top."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from landscape.api import create_app
from landscape.api.security import SECURITY_HEADERS
from landscape.api.settings import ServiceSettings
from landscape.errors import UserError

from ._auth import LoginRequired
from ._render import STATIC, render

__all__ = ["create_site"]

#: paths whose errors stay JSON (the API and its docs)
_MACHINE = ("/api/", "/docs", "/static/")

_TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Bad request",
    429: "Too many requests",
}


def _is_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(_MACHINE) and path != "/review/undo"


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line[:300] if line else "Something went wrong."


def error_page(request: Request, code: int, message: str) -> Response:
    """The one-line error page (never a stack trace)."""
    response = render(
        request,
        "error.html",
        code,
        title=_TITLES.get(code, "Error"),
        code=code,
        message=_one_line(message),
    )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _install_errors(app: FastAPI) -> None:
    api_user_error = app.exception_handlers.get(UserError)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not _is_page(request):
            return await http_exception_handler(request, exc)
        response = error_page(request, exc.status_code, exc.detail)
        for name, value in (exc.headers or {}).items():
            if name.lower() != "www-authenticate":
                response.headers[name] = value
        return response

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not _is_page(request):
            return await request_validation_exception_handler(request, exc)
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return error_page(
            request, status.HTTP_400_BAD_REQUEST, f"{where}: {first.get('msg', 'invalid input')}"
        )

    async def user_error(request: Request, exc: Exception) -> Response:
        if not _is_page(request) and api_user_error is not None:
            result: Any = api_user_error(request, exc)
            if hasattr(result, "__await__"):
                result = await result
            assert isinstance(result, Response)
            return result
        code = 404 if isinstance(exc, LookupError) else 400
        return error_page(request, code, str(exc))

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        if request.method not in ("GET", "HEAD"):
            return error_page(request, status.HTTP_401_UNAUTHORIZED, "Log in first.")
        return RedirectResponse(exc.next_url, status.HTTP_303_SEE_OTHER)

    async def server_error(request: Request, exc: Exception) -> Response:
        if not _is_page(request):
            from fastapi.responses import JSONResponse

            return JSONResponse(
                {"detail": "internal error: see the server's log"},
                status.HTTP_500_INTERNAL_SERVER_ERROR,
                headers=SECURITY_HEADERS,
            )
        return error_page(
            request, status.HTTP_500_INTERNAL_SERVER_ERROR, "Something went wrong on the server."
        )

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Exception, server_error)


def create_site(settings: ServiceSettings | None = None) -> FastAPI:
    """The whole service: ``/api/v1`` and ``/docs`` (:func:`landscape.api.create_app`) plus the
    GUI: ``/login``, ``/`` (gallery), ``/files/{id}``, ``/review``, ``/upload``,
    ``/dashboard`` and ``/static``."""
    from ._auth import router as auth_router
    from ._pages import router as pages_router

    app = create_app(settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(auth_router)
    app.include_router(pages_router)
    _install_errors(app)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status.HTTP_301_MOVED_PERMANENTLY)

    return app
