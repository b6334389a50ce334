"""What routes depend on: the service's state, a database session, and the caller's identity
(``Annotated`` aliases, so a route says ``caller: Reader`` or ``caller: Writer``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from landscape.index.accounts import Identity, identify_token
from landscape.index.schema import User

from .security import SESSION_COOKIE, LoginThrottle, read_session
from .settings import ServiceSettings

__all__ = [
    "Admin",
    "AppState",
    "DbSession",
    "Reader",
    "Writer",
    "active_bundle_path",
    "get_state",
    "identify",
    "require",
]

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class AppState:
    """The service's one state object (on ``app.state.landscape``): settings, database and the
    model, loaded once on first use under a lock."""

    settings: ServiceSettings
    engine: Engine
    sessions: sessionmaker[Session]
    key: bytes
    throttle: LoginThrottle
    #: folders whose files may be served (configured roots and the upload root; empty: the
    #: index's own roots)
    roots: tuple[Any, ...] = ()
    model_path: Any = None
    _predictor: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def follow_active_model(self) -> None:
        """Serve the index's active model from now on (after an activation or a rollback);
        a model given on the command line (``--model``) stays."""
        if self.settings.model is not None:
            return
        with self._lock:
            self.model_path = active_bundle_path(self.engine)
            self._predictor = None

    def predictor(self) -> Any:
        """The Predictor of the served model (None without one); loaded once, thread-safe."""
        if self.model_path is None:
            return None
        with self._lock:
            if self._predictor is None:
                from landscape.inference.predictor import Predictor

                self._predictor = Predictor.from_bundle(self.model_path)
            return self._predictor


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.landscape
    return state


def _session(request: Request) -> Iterator[Session]:
    with get_state(request).sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(_session)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def identify(request: Request) -> Identity | None:
    """The caller: a Bearer token's identity, else a valid session cookie's (whose unsafe
    requests must carry its CSRF token), else None."""
    state = get_state(request)
    token = _bearer(request)
    if token is not None:
        with state.sessions() as session:
            who = identify_token(session, token)
            session.commit()
        if who is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "the token is unknown or expired: issue one with `landscape users token NAME`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return who
    data = read_session(state.key, request.cookies.get(SESSION_COOKIE))
    if data is None:
        return None
    if request.method in _UNSAFE:
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf")
            sent = value if isinstance(value, str) else None
        if sent != data.csrf:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload the page"
            )
    with state.sessions() as session:
        user = session.get(User, data.user_id)
        if user is None:
            return None
        from landscape.index.accounts import role_scopes

        request.state.csrf = data.csrf
        return Identity(user.id, user.name, user.role, role_scopes(user.role)[-1])


def require(scope: str) -> Any:
    """A dependency: the caller, who must hold ``scope`` (401 when anonymous, 403 when not
    allowed)."""

    async def check(request: Request) -> Identity:
        who = await identify(request)
        if who is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "log in, or send Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not who.allows(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {scope!r} scope; {who.name} has {who.scope!r}",
            )
        request.state.identity = who
        return who

    return check


Reader = Annotated[Identity, Depends(require("read"))]
Writer = Annotated[Identity, Depends(require("write"))]
Admin = Annotated[Identity, Depends(require("admin"))]


def active_bundle_path(engine: Any) -> Path | None:
    """The bundle of the index's active model (None without one, or when it is missing)."""
    from landscape.index.db import session_factory
    from landscape.index.registry import active_model

    with session_factory(engine)() as session:
        row = active_model(session)
    if row is None:
        return None
    path = Path(row.bundle_path)
    if not path.exists():
        # Reads still work; uploads are stored without a label until the bundle is back.
        import logging

        logging.getLogger("landscape.api").warning(
            "the active model's bundle %s is missing: uploads are not classified", path
        )
        return None
    return path
