"""The API over a real index, on SQLite and on PostgreSQL.

A synthetic archive (photos with EXIF and GPS, the odd files, a survey video) is indexed once
per database per session with a model that tells the classes apart; viewer, analyst and admin
users with tokens are added to it. That index is a *template*: each test gets its own copy
(a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL, a few milliseconds), so a
test may correct, upload and break rows without disturbing another.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from landscape.data.archive import ArchiveSpec, SyntheticArchive, build_archive
from landscape.index._testing import PostgresServer
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from tests.index.conftest import postgres_server

__all__ = ["Api", "Template", "postgres_server"]

PASSWORD = "correct horse battery"
ROLES = ("viewer", "analyst", "admin")


@dataclass
class Template:
    """An indexed archive in a database that each test copies."""

    backend: str
    url: str
    archive: SyntheticArchive
    bundle: Path
    #: user name → API token (scope: all the role allows)
    tokens: dict[str, str]
    clone: Callable[[Path], str]


@dataclass
class Api:
    """One test's service: its client, settings, database and the users' tokens."""

    client: TestClient
    app: Any
    url: str
    settings: Any
    template: Template
    tokens: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.template.archive.root

    def headers(self, user: str) -> dict[str, str]:
        """The Authorization header of ``user``'s token."""
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, path: str, user: str = "viewer", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(user), **kwargs)

    def post(self, path: str, user: str = "analyst", **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.headers(user), **kwargs)

    def session(self) -> Any:
        """A session on this test's database."""
        return self.app.state.landscape.sessions()

    def all_files(self, user: str = "viewer", **params: Any) -> list[dict[str, Any]]:
        """Every file the listing returns, walking the cursors."""
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self.get("/api/v1/files", user, params=query)
            assert page.status_code == 200, page.text
            body = page.json()
            items += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("the cursors never ended")


def _add_users(url: str) -> dict[str, str]:
    from landscape.index.accounts import add_user, issue_token

    tokens = {}
    engine = open_index(url)
    try:
        with session_factory(engine)() as session:
            for role in ROLES:
                add_user(session, role, role, PASSWORD)
                tokens[role], _ = issue_token(session, role, expires=timedelta(days=1))
            session.commit()
    finally:
        engine.dispose()  # a SQLite copy then holds everything (no WAL left behind)
    return tokens


def _build(db: str, workdir: Path, bundle: Path) -> tuple[SyntheticArchive, dict[str, str]]:
    from landscape.inference.predictor import Predictor

    archive = build_archive(
        workdir / "archive", ArchiveSpec(per_class=2, size=64, seed=3, video=True)
    )
    engine = open_index(db)
    try:
        run_index(
            engine,
            [archive.root],
            predictor=Predictor.from_bundle(bundle),
            options=IndexOptions(workers=1, memory_mb=None),
        )
    finally:
        engine.dispose()
    tokens = _add_users(db)
    return archive, tokens


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def template(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    scene_run: Path,
) -> Iterator[Template]:
    """The indexed archive, on SQLite then on PostgreSQL (built once per session each)."""
    workdir = tmp_path_factory.mktemp(f"api-{request.param}")
    bundle = scene_run / "bundle"
    if request.param == "sqlite":
        db_file = workdir / "template.db"
        url = f"sqlite:///{db_file}"
        archive, tokens = _build(url, workdir, bundle)

        def clone_sqlite(target_dir: Path) -> str:
            target = target_dir / "index.db"
            shutil.copyfile(db_file, target)
            keyframes = db_file.with_name(f"{db_file.stem}.keyframes")
            if keyframes.is_dir():
                shutil.copytree(keyframes, target.with_name("index.keyframes"))
            return f"sqlite:///{target}"

        yield Template("sqlite", url, archive, bundle, tokens, clone_sqlite)
        return

    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"tpl_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name, vector=True)
    archive, tokens = _build(url, workdir, bundle)
    clones: list[str] = []

    def clone_pg(target_dir: Path) -> str:
        from psycopg import sql

        copy = f"t_{uuid.uuid4().hex[:16]}"
        with server._connect("postgres") as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(copy), sql.Identifier(name)
                )
            )
        clones.append(copy)
        return server.url(copy)

    try:
        yield Template("postgresql", url, archive, bundle, tokens, clone_pg)
    finally:
        for copy in clones:
            server.drop_database(copy)
        server.drop_database(name)


@pytest.fixture
def make_api(template: Template, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """A factory of services over a fresh copy of the template (``**settings`` override
    :class:`~landscape.api.ServiceSettings`)."""
    from landscape.api import ServiceSettings, create_app

    made: list[Api] = []

    def make(**overrides: Any) -> Api:
        folder = tmp_path / f"svc{len(made)}"
        folder.mkdir()
        url = template.clone(folder)
        values: dict[str, Any] = {
            "db": url,
            "home": folder / "home",
            "roots": (template.archive.root,),
            "secret": "test-secret-key-0123456789",
        }
        values.update(overrides)
        settings = ServiceSettings(**values)
        app = create_app(settings)
        client = TestClient(app, raise_server_exceptions=False)
        api = Api(client, app, url, settings, template, dict(template.tokens))
        made.append(api)
        return api

    yield make
    for api in made:
        api.client.close()
        api.app.state.landscape.engine.dispose()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """The service over this test's own copy of the index (roots: the archive)."""
    return make_api()
