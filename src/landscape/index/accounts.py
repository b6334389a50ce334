"""Accounts of the service: users with a role, passwords (Argon2), scoped expiring API tokens,
and the audit log. Used by ``landscape users`` and by the API; the database is the only state.

Roles and scopes: ``viewer`` may read; ``analyst`` may also upload and correct (``write``);
``admin`` may also manage users and models (``admin``). A token carries one scope, at most what
its user's role allows, checked again at each use (a demoted user's old tokens lose power).
Tokens are 32 random bytes shown once; only their SHA-256 is stored, so a leaked database
gives no working token. Passwords are Argon2id hashes, re-hashed on login when the parameters
change; a login for an unknown user still verifies against a dummy hash, so timing does not
tell which names exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from landscape.errors import UserError

from .schema import ROLES, ApiToken, AuditEntry, User, utcnow

__all__ = [
    "ROLES",
    "SCOPES",
    "AccountError",
    "Identity",
    "add_user",
    "audit",
    "authenticate",
    "identify_token",
    "issue_token",
    "list_users",
    "parse_duration",
    "remove_user",
    "role_scopes",
    "set_password",
]

#: token scopes from least to most powerful
SCOPES: tuple[str, ...] = ("read", "write", "admin")
_ROLE_SCOPE = {"viewer": "read", "analyst": "write", "admin": "admin"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN_PREFIX = "lsk_"
_USE_RESOLUTION = timedelta(minutes=5)
MIN_PASSWORD = 8


class AccountError(UserError):
    """A user or token operation that cannot be done (unknown user, bad name, weak password)."""


@dataclass(frozen=True)
class Identity:
    """Who is calling and what they may do: the user, their role, and the scope in force
    (a token's, or the role's own for a password login)."""

    user_id: int
    name: str
    role: str
    scope: str

    def allows(self, needed: str) -> bool:
        """Whether this identity's scope covers ``needed`` (read < write < admin)."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def role_scopes(role: str) -> tuple[str, ...]:
    """The scopes a role may hold: everything up to its own."""
    return SCOPES[: SCOPES.index(_ROLE_SCOPE[role]) + 1]


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


_DUMMY: dict[str, str] = {}


def _dummy_hash() -> str:
    if "hash" not in _DUMMY:
        _DUMMY["hash"] = _hasher().hash(secrets.token_hex(16))
    return _DUMMY["hash"]


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AccountError(
            f"{name!r} is not a valid user name",
            fix="use 1–64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(
            f"the password is too short ({len(password)} characters)",
            fix=f"use at least {MIN_PASSWORD} characters",
        )


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"no user named {name!r}", fix="see `landscape users list`")
    return user


def add_user(session: Session, name: str, role: str, password: str | None) -> User:
    """Create a user (``password`` None: token-only, no GUI login). Not committed."""
    _check_name(name)
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}", fix=f"use one of: {', '.join(ROLES)}")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError(f"a user named {name!r} exists", fix="choose another name")
    if password is not None:
        _check_password(password)
    user = User(
        name=name,
        role=role,
        password_hash=_hasher().hash(password) if password is not None else None,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, name: str, password: str) -> None:
    """Replace a user's password. Not committed."""
    _check_password(password)
    _user(session, name).password_hash = _hasher().hash(password)


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every user with role, creation and last login, and how many live tokens they hold."""
    now = utcnow()
    out = []
    for user in session.scalars(select(User).order_by(User.name)):
        live = sum(1 for t in user.tokens if _aware(t.expires_at) > now)
        out.append(
            {
                "name": user.name,
                "role": user.role,
                "created_at": _aware(user.created_at).isoformat(),
                "last_login_at": (
                    _aware(user.last_login_at).isoformat() if user.last_login_at else None
                ),
                "tokens": live,
                "password": user.password_hash is not None,
            }
        )
    return out


def remove_user(session: Session, name: str) -> None:
    """Delete a user and their tokens (their corrections stay, with their name). Not
    committed."""
    user = _user(session, name)
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` → a duration (a one-line error otherwise)."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise AccountError(f"cannot read the duration {text!r}", fix="use e.g. 90m, 12h, 30d or 2w")
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session, name: str, scope: str | None = None, expires: timedelta | None = None
) -> tuple[str, ApiToken]:
    """A new token for ``name``: its text (shown once) and its row. ``scope`` defaults to all
    the role allows and may not exceed it; ``expires`` defaults to 90 days. Not committed."""
    user = _user(session, name)
    allowed = role_scopes(user.role)
    scope = scope or allowed[-1]
    if scope not in SCOPES:
        raise AccountError(f"unknown scope {scope!r}", fix=f"use one of: {', '.join(SCOPES)}")
    if scope not in allowed:
        raise AccountError(
            f"the {user.role} {name!r} cannot hold a {scope!r} token",
            fix=f"use --scope {allowed[-1]} or lower, or change the user's role",
        )
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        token_hash=_digest(token),
        scope=scope,
        expires_at=utcnow() + (expires or timedelta(days=90)),
    )
    session.add(row)
    session.flush()
    return token, row


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns: they are UTC."""
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def identify_token(session: Session, token: str) -> Identity | None:
    """The identity a token grants, or None (unknown, expired, or its user is gone). The scope
    is capped by the user's current role. Records the use time (not committed).

    One SELECT (the token joined to its user, only the columns needed; a request pays it on
    every call) and an UPDATE only when the recorded use time is older than its resolution."""
    if not token.startswith(_TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(
            ApiToken.id,
            ApiToken.scope,
            ApiToken.expires_at,
            ApiToken.last_used_at,
            User.id.label("user_id"),
            User.name,
            User.role,
        )
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _digest(token))
    ).first()
    now = utcnow()
    if row is None or _aware(row.expires_at) <= now:
        return None
    allowed = role_scopes(row.role)
    scope = row.scope if row.scope in allowed else allowed[-1]
    # Recorded to the minute or so: a write (and on SQLite an fsync) per request would
    # serialise every API call behind the database's one writer.
    if row.last_used_at is None or now - _aware(row.last_used_at) > _USE_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return Identity(row.user_id, row.name, row.role, scope)


def authenticate(session: Session, name: str, password: str) -> Identity | None:
    """The identity of a password login, or None; the hash is upgraded when Argon2's
    parameters changed. Unknown names take as long as wrong passwords."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _hasher()
    user = session.scalar(select(User).where(User.name == name)) if _NAME.match(name) else None
    stored = user.password_hash if user is not None and user.password_hash else None
    try:
        hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or stored is None:
        return None
    if hasher.check_needs_rehash(stored):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    return Identity(user.id, user.name, user.role, _ROLE_SCOPE[user.role])


def audit(
    session: Session,
    user_name: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record an action in the audit log (in the caller's transaction)."""
    session.add(AuditEntry(user_name=user_name, action=action, target=target, details=details))
