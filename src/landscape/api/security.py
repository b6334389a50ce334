"""Who is calling, and the web's safety rails: signed session cookies with a CSRF token, login
throttling, and the response headers every page carries.

A session cookie holds ``{user id, expiry, csrf}`` signed with HMAC-SHA256 (the key from
:meth:`~landscape.api.settings.ServiceSettings.signing_key`): nothing secret is in it, nothing
in it can be changed. It is HttpOnly and SameSite=Strict. Requests that change something and
are authenticated by the cookie must echo the session's CSRF token (the ``X-CSRF-Token`` header,
which htmx and the pages' fetch calls send, or a ``csrf`` form field); Bearer-token requests need
none, since a browser never adds that header by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = [
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "LoginThrottle",
    "SessionData",
    "read_session",
    "sign_session",
]

SESSION_COOKIE = "landscape_session"

#: on every response: no inline script, no framing, no MIME sniffing, no referrer leaks
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class SessionData:
    """What a session cookie says: whose it is, until when, and its CSRF token."""

    user_id: int
    expires: float
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_session(key: bytes, user_id: int, lifetime_s: float) -> tuple[str, SessionData]:
    """A new session for ``user_id``: the cookie value and what it holds."""
    data = SessionData(user_id, time.time() + lifetime_s, secrets.token_urlsafe(24))
    payload = _b64(json.dumps({"u": data.user_id, "e": data.expires, "c": data.csrf}).encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}", data


def read_session(key: bytes, value: str | None) -> SessionData | None:
    """The session in a cookie value, or None when absent, forged, malformed or expired."""
    if not value or len(value) > 1024 or value.count(".") != 1:
        return None
    payload, mac = value.split(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        raw = json.loads(_unb64(payload))
        data = SessionData(int(raw["u"]), float(raw["e"]), str(raw["c"]))
    except (ValueError, KeyError, TypeError):
        return None
    return data if data.expires > time.time() else None


class LoginThrottle:
    """At most ``attempts`` failed logins per (name, address) in ``window_s`` seconds; further
    tries are refused until the oldest failure leaves the window. In memory: one process."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def retry_after(self, name: str, address: str) -> float:
        """Seconds until this name may try again from this address (0: now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent((name.lower(), address), now)
            if len(failures) < self.attempts:
                return 0.0
            return failures[0] + self.window_s - now

    def failed(self, name: str, address: str) -> None:
        """Record a failed login."""
        now = time.monotonic()
        with self._lock:
            self._recent((name.lower(), address), now).append(now)

    def succeeded(self, name: str, address: str) -> None:
        """Forget the failures of a name that logged in."""
        with self._lock:
            self._failures.pop((name.lower(), address), None)
