"""``landscape users add|list|remove|passwd|token`` run as a user runs them (a subprocess, the
password piped in), and the tokens it prints work against the API."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from landscape.index.db import open_index, session_factory
from landscape.index.schema import ApiToken, User
from tests.conftest import CliResult

Result = subprocess.CompletedProcess[str]


def _run(db: str, *args: str, stdin: str = "") -> Result:
    """``landscape users ARGS --db DB`` in a new process, ``stdin`` piped in."""
    return subprocess.run(
        [sys.executable, "-m", "landscape", "users", *args, "--db", db],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def users(
    run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """The same in this process (what ``main`` prints and returns; a second each saved)."""

    def run(db: str, *args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        out = run_cli("users", *args, "--db", db)
        return subprocess.CompletedProcess(args, out.code, out.out, out.err)

    return run


def _one_line_error(result: Result, *words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]
    assert "lsk_" not in result.stdout


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.db'}"


def _token(db: str, name: str, *args: str, run: Callable[..., Result] = _run) -> str:
    result = run(db, "token", name, *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[-1] == lines[-1].strip()
    assert lines[-1].startswith("lsk_") and " " not in lines[-1]
    assert "shown once" in result.stderr
    return lines[-1]


def _client(db: str, tmp_path: Path) -> TestClient:
    from landscape.api import ServiceSettings, create_app

    app = create_app(ServiceSettings(db=db, home=tmp_path / "home", secret="k" * 32))
    return TestClient(app, raise_server_exceptions=False)


def test_add_list_token_passwd_remove(db: str, tmp_path: Path) -> None:
    added = _run(db, "add", "ana", "--role", "analyst", "--password-stdin", stdin="first-pass\n")
    assert added.returncode == 0, added.stderr
    assert "added analyst ana" in added.stdout
    assert (
        _run(db, "add", "root", "--role", "admin", "--password-stdin", stdin="x" * 12).returncode
        == 0
    )
    assert _run(db, "add", "bot", "--no-password").returncode == 0

    listed = _run(db, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    users = {u["name"]: u for u in json.loads(listed.stdout)}
    assert {n: u["role"] for n, u in users.items()} == {
        "ana": "analyst",
        "root": "admin",
        "bot": "viewer",
    }
    assert users["ana"]["password"] is True and users["bot"]["password"] is False
    assert users["ana"]["tokens"] == 0
    created = datetime.fromisoformat(users["ana"]["created_at"])
    assert created.tzinfo is not None and abs(created - datetime.now(UTC)) < timedelta(minutes=5)
    assert "ana" in _run(db, "list").stdout

    token = _token(db, "ana")
    admin_token = _token(db, "root", "--scope", "admin")
    assert json.loads(_run(db, "list", "--json").stdout)[0]["tokens"] == 1  # ana first

    with _client(db, tmp_path) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/files", headers=auth).status_code == 200
        assert client.get("/api/v1/audit", headers=auth).status_code == 403
        audit = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {admin_token}"})
        assert audit.status_code == 200
        actions = [(e["user"], e["action"], e["target"]) for e in audit.json()["items"]]
        assert ("cli", "user.add", "ana") in actions
        assert ("cli", "token.issue", "ana") in actions

        changed = _run(db, "passwd", "ana", "--password-stdin", stdin="second-pass\n")
        assert changed.returncode == 0, changed.stderr
        from landscape.index.accounts import authenticate

        with session_factory(open_index(db))() as session:
            assert authenticate(session, "ana", "second-pass") is not None
            assert authenticate(session, "ana", "first-pass") is None

        removed = _run(db, "remove", "ana")
        assert removed.returncode == 0 and "removed ana" in removed.stdout
        assert client.get("/api/v1/files", headers=auth).status_code == 401
    assert "ana" not in {u["name"] for u in json.loads(_run(db, "list", "--json").stdout)}


def test_a_scope_beyond_the_role_is_a_one_line_error(db: str) -> None:
    assert _run(db, "add", "vic", "--password-stdin", stdin="long-enough\n").returncode == 0
    _one_line_error(_run(db, "token", "vic", "--scope", "write"), "viewer", "'write'")
    _one_line_error(_run(db, "token", "vic", "--scope", "admin"), "viewer")
    assert _token(db, "vic", "--scope", "read")
    assert _run(db, "add", "ann", "--role", "analyst", "--no-password").returncode == 0
    _one_line_error(_run(db, "token", "ann", "--scope", "admin"), "analyst")
    _one_line_error(_run(db, "token", "nobody"), "nobody")
    with session_factory(open_index(db))() as session:
        assert [t.scope for t in session.scalars(select(ApiToken))] == ["read"]


def test_expires_sets_the_expiry(db: str, users: Callable[..., Result]) -> None:
    assert users(db, "add", "eve", "--no-password").returncode == 0
    before = datetime.now(UTC)
    token = _token(db, "eve", "--expires", "30d", run=users)
    short = _token(db, "eve", "--expires", "90m", run=users)
    default = _token(db, "eve", run=users)
    with session_factory(open_index(db))() as session:
        rows = {t.id: t for t in session.scalars(select(ApiToken))}
        expiries = [rows[i].expires_at.replace(tzinfo=UTC) for i in sorted(rows)]
    for expiry, lifetime in zip(
        expiries, (timedelta(days=30), timedelta(minutes=90), timedelta(days=90)), strict=True
    ):
        assert abs(expiry - (before + lifetime)) < timedelta(minutes=2)
    assert token != short != default
    for bad in ("30x", "0d", "d", "-3d", "1.5d", "30 days"):
        _one_line_error(users(db, "token", "eve", "--expires", bad), "duration")


@pytest.mark.parametrize("name", ["bad name", "-dash", "a/b", "x" * 65, "<script>", "ünï"])
def test_a_bad_name_is_a_one_line_error(db: str, name: str, users: Callable[..., Result]) -> None:
    result = users(db, "add", name, "--password-stdin", stdin="long-enough\n")
    if result.returncode == 2:  # "-dash" reads as an option: a usage error, still no traceback
        assert "Traceback" not in result.stderr
        return
    _one_line_error(result, "not a valid user name")


def test_short_passwords_duplicates_and_missing_input_are_one_line_errors(
    db: str, users: Callable[..., Result]
) -> None:
    _one_line_error(users(db, "add", "sam", "--password-stdin", stdin="short\n"), "too short")
    _one_line_error(users(db, "add", "sam", "--password-stdin", stdin=""), "no password")
    _one_line_error(users(db, "add", "sam", "--password-stdin", stdin="\n"), "no password")
    # Not a terminal and no --password-stdin: nothing to prompt with.
    _one_line_error(users(db, "add", "sam"), "not a terminal")
    assert users(db, "add", "sam", "--password-stdin", stdin="long-enough\n").returncode == 0
    _one_line_error(users(db, "add", "sam", "--no-password"), "exists")
    _one_line_error(users(db, "passwd", "sam", "--password-stdin", stdin="tiny\n"), "too short")
    _one_line_error(
        users(db, "passwd", "ghost", "--password-stdin", stdin="long-enough\n"), "ghost"
    )
    _one_line_error(users(db, "remove", "ghost"), "ghost")
    role = users(db, "add", "tom", "--role", "boss", "--no-password")
    assert role.returncode == 2 and "Traceback" not in role.stderr
    with session_factory(open_index(db))() as session:
        assert [u.name for u in session.scalars(select(User))] == ["sam"]
