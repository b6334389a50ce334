"""Logging in and out of the GUI, and who may see a page.

A page takes :data:`PageUser`: the caller from a session cookie or a Bearer token
(:func:`landscape.api.deps.identify`); an anonymous GET is sent to ``/login?next=…``. The login
form is itself protected against cross-site posts by a double-submit token: ``GET /login``
sets a random nonce in an HttpOnly, SameSite=Strict cookie and puts its HMAC (the service's
signing key) in a hidden field; ``POST /login`` accepts only the pair.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import RedirectResponse, Response

from landscape.api.deps import get_state, identify
from landscape.api.security import SESSION_COOKIE, sign_session
from landscape.index.accounts import Identity

from ._render import render

__all__ = ["LOGIN_COOKIE", "LoginRequired", "PageUser", "router", "safe_next"]

LOGIN_COOKIE = "landscape_login"

router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """An anonymous request for a page: answered with a redirect to the login form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/`` (no open redirect)."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def login_url(request: Request) -> str:
    """``/login`` with the requested page as ``next``."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(safe_next(target), safe="")


async def page_user(request: Request) -> Identity:
    """The caller of a page (session cookie or Bearer token), else :class:`LoginRequired`."""
    who = await identify(request)
    if who is None:
        raise LoginRequired(login_url(request))
    request.state.identity = who
    return who


PageUser = Annotated[Identity, Depends(page_user)]


def _login_mac(key: bytes, nonce: str) -> str:
    return hmac.new(key, b"login:" + nonce.encode(), hashlib.sha256).hexdigest()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request, next_url: str, error: str | None = None, code: int = 200, name: str = ""
) -> Response:
    state = get_state(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    fresh = not nonce or len(nonce) > 100
    if fresh:
        nonce = secrets.token_urlsafe(24)
    assert nonce is not None
    response = render(
        request,
        "login.html",
        code,
        next=next_url,
        error=error,
        name=name,
        login_csrf=_login_mac(state.key, nonce),
    )
    if fresh:
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=state.settings.cookie_secure,
            path="/login",
        )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    """The login form (a logged-in caller goes straight on)."""
    if await identify(request) is not None:
        return RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the name and password; on success set the session cookie and go to ``next``."""
    from landscape.index.accounts import audit, authenticate

    state = get_state(request)
    target = safe_next(next)
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    if not nonce or not hmac.compare_digest(csrf, _login_mac(state.key, nonce)):
        return _login_page(
            request, target, "The form expired or came from another site: try again.", 403, name
        )
    address = _client(request)
    wait = state.throttle.retry_after(name, address)
    if wait > 0:
        response = render(
            request,
            "error.html",
            429,
            code=429,
            message=f"Too many failed logins: try again in {int(wait) + 1} seconds.",
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    with state.sessions() as session:
        who = authenticate(session, name, password) if name and password else None
        if who is not None:
            audit(session, who.name, "user.login", f"user:{who.name}", {"address": address})
        session.commit()
    if who is None:
        state.throttle.failed(name, address)
        return _login_page(request, target, "Wrong name or password.", 401, name)
    state.throttle.succeeded(name, address)
    lifetime = state.settings.session_hours * 3600
    cookie, _ = sign_session(state.key, who.user_id, lifetime)
    redirect = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    redirect.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(lifetime),
        httponly=True,
        samesite="strict",
        secure=state.settings.cookie_secure,
        path="/",
    )
    redirect.delete_cookie(LOGIN_COOKIE, path="/login")
    return redirect


@router.post("/logout")
def logout(request: Request, who: PageUser) -> Response:
    """Forget the session cookie (the form carries the session's CSRF token)."""
    state = get_state(request)
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=state.settings.cookie_secure,
    )
    return response
