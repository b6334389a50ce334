"""Databases for the index tests: SQLite, and a real PostgreSQL 18 with pgvector.

One server per test session (``postgres_server``, about 1 s to start), a fresh database per test
(dropped after it). A test taking ``db_url`` runs twice, on SQLite and on PostgreSQL. Where no
PostgreSQL can be had the PostgreSQL cases are skipped with the reason, except in CI
(``CI=true``), where they fail: CI must test both databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from landscape.index._testing import PostgresServer, PostgresUnavailable


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL 18 server with pgvector, for the whole session."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI must test PostgreSQL, but none can be had: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL here: {exc}")
    try:
        yield server
    finally:
        server.stop()


def _fresh_database(server: PostgresServer, *, vector: bool) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name, vector=vector)
    yield url
    # FORCE closes what the test left open (an engine not disposed), so nothing piles up.
    server.drop_database(name)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database with the ``vector`` extension created."""
    yield from _fresh_database(postgres_server, vector=True)


@pytest.fixture
def postgres_url_novector(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database without the ``vector`` extension."""
    yield from _fresh_database(postgres_server, vector=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh, empty database: SQLite file, then PostgreSQL with pgvector."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.db'}"
    # Looked up only here, so a run of SQLite cases alone never starts a server.
    url: str = request.getfixturevalue("postgres_url")
    return url
