"""The index database: migrations from the package, schema checks, locks, constraints, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from landscape.index.db import (
    DatabaseError,
    current_revision,
    has_table,
    head_revision,
    make_engine,
    open_index,
    resolve_url,
    schema_status,
    session_factory,
    upgrade,
    writer_lock,
)
from landscape.index.schema import File, Model, Prediction, Root
from tests.conftest import CliResult

TABLES = ("roots", "files", "media_metadata", "models", "predictions", "embeddings", "scans")


def test_upgrade_creates_the_schema_the_models_describe(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    assert schema_status(engine).current is None
    assert upgrade(engine) == head_revision() == current_revision(engine)
    assert all(has_table(engine, t) for t in TABLES)
    status = schema_status(engine)
    assert status.ok, status.differences  # migrations == models, on this backend
    assert upgrade(engine) == head_revision()  # idempotent


def test_a_still_image_has_one_prediction_per_model(db_url: str) -> None:
    engine = open_index(db_url)
    with session_factory(engine)() as session:
        root = Root(path="/archive")
        file = File(root=root, relative_path="a.jpg", size=1, mtime_ns=1)
        session.add_all([root, file, Model(model_id="m1", classes=["a"], bundle_path="/b")])
        session.flush()
        row = {"label": "a", "confidence": 0.9, "probabilities": {"a": 0.9}}
        session.add(Prediction(file_id=file.id, model_id="m1", **row))
        session.commit()
        session.add(Prediction(file_id=file.id, model_id="m1", **row))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(Prediction(file_id=file.id, model_id="m1", segment=1, **row))
        session.commit()  # a second segment (video) is allowed
        assert session.query(Prediction).count() == 2


def test_a_newer_schema_is_refused_with_one_line(db_url: str) -> None:
    engine = open_index(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(DatabaseError, match="newer than this landscape knows") as caught:
        upgrade(engine)
    assert "\n" not in str(caught.value)
    with pytest.raises(DatabaseError, match="newer"):
        open_index(db_url)


def test_open_without_create_asks_for_an_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(DatabaseError, match="landscape db upgrade"):
        open_index(url, create=False)
    open_index(url)
    assert open_index(url, create=False).dialect.name == "sqlite"


def test_second_writer_is_refused_while_the_first_holds_the_lock(db_url: str) -> None:
    first, second = open_index(db_url), make_engine(db_url)
    refused = pytest.raises(DatabaseError, match="another `landscape index`")
    with writer_lock(first), refused, writer_lock(second):
        pass
    with writer_lock(second):  # released: the next writer gets it
        pass


def test_bad_urls_and_unreachable_servers_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="not a database URL"):
        make_engine("not a url")
    with pytest.raises(DatabaseError, match="cannot open the database"):
        upgrade(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    locked = tmp_path / "ro"
    locked.mkdir()
    (locked / "x.db").write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(DatabaseError):
        upgrade(make_engine(f"sqlite:///{locked / 'x.db'}"))


def test_default_url_comes_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LANDSCAPE_DB", raising=False)
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'home' / 'landscape.db'}"
    assert resolve_url("sqlite:///given.db") == "sqlite:///given.db"
    open_index()
    assert (tmp_path / "home" / "landscape.db").is_file()


def test_db_commands_as_a_user(run_cli: Callable[..., CliResult], db_url: str) -> None:
    result = run_cli("db", "check", "--db", db_url)
    assert result.code == 1 and "run `landscape db upgrade`" in result.err
    assert run_cli("db", "upgrade", "--db", db_url).code == 0
    current = json.loads(run_cli("db", "current", "--db", db_url, "--json").out)
    assert current == {"current": head_revision(), "head": head_revision()}
    check = run_cli("db", "check", "--db", db_url, "--json")
    assert check.code == 0 and json.loads(check.out)["ok"] is True
    bad = run_cli("db", "upgrade", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert bad.code == 1 and len(bad.err.strip().splitlines()) == 1


def test_migrations_run_from_an_installed_wheel(tmp_path: Path) -> None:
    """The migrations are package data: an installed wheel (no source tree) migrates too."""
    repo = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(repo)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("landscape-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import landscape; "
        f"assert landscape.__file__.startswith({str(target)!r}), landscape.__file__; "
        "from landscape.index.db import open_index, schema_status; "
        f"e = open_index('sqlite:///{tmp_path / 'w.db'}'); print(schema_status(e).ok)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_a_database_this_user_cannot_write_is_named_with_the_reason(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    # /sys refuses new files even to root (chmod would not stop root); a folder is no file.
    with pytest.raises(DatabaseError, match=r"cannot write the database file \(Permission denied"):
        open_index("sqlite:////sys/landscape.db")
    with pytest.raises(DatabaseError, match=r"Is a directory"):
        open_index(f"sqlite:///{tmp_path}")
    result = run_cli("index", tmp_path, "--db", "sqlite:////sys/landscape.db")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "/sys/landscape.db" in result.err and "Permission denied" in result.err
    assert "Traceback" not in result.err


def test_upgrading_from_0001_dates_the_files_already_indexed(db_url: str) -> None:
    """0002 adds files.taken_at and fills it: the capture time, else the modification time."""
    engine = make_engine(db_url)
    assert upgrade(engine, "0001") == "0001"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO roots (id, path, created_at, file_count) "
                "VALUES (1, '/a', CURRENT_TIMESTAMP, 2)"
            )
        )
        for file_id in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO files (id, root_id, relative_path, size, mtime_ns, media_type, "
                    "status, first_seen_at, last_seen_at) VALUES (:id, 1, :path, 1, "
                    ":mtime, 'image', 'ok', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": file_id, "path": f"{file_id}.jpg", "mtime": 1_700_000_000 * 10**9},
            )
        connection.execute(
            text("INSERT INTO media_metadata (file_id, captured_at) VALUES (1, :when)"),
            {"when": datetime(2019, 5, 4, 10, 30)},
        )
    assert upgrade(engine) == head_revision()
    with engine.connect() as connection:
        taken = dict(connection.execute(text("SELECT id, taken_at FROM files")).all())
    as_dt = {
        k: v if isinstance(v, datetime) else datetime.fromisoformat(v) for k, v in taken.items()
    }
    assert as_dt[1] == datetime(2019, 5, 4, 10, 30)
    assert as_dt[2] == datetime(2023, 11, 14, 22, 13, 20)  # 1.7e9 s after the epoch, UTC


def test_opening_the_index_again_keeps_another_engines_commits(tmp_path: Path) -> None:
    """Opening (and closing) the database file in a process releases every POSIX lock the
    process holds on it; another process then deletes the WAL under the first engine and its
    later commits are lost. ``open_index`` must never do that to an engine already open."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'x.db'}"
    first = open_index(url)
    with first.begin() as c:
        c.execute(text("CREATE TABLE notes (v TEXT)"))
        c.execute(text("INSERT INTO notes VALUES ('one')"))
    second = open_index(url)
    with second.connect() as c:
        c.execute(text("SELECT 1"))
    second.dispose()
    read = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(','.join(v for (v,) in c.execute('SELECT v FROM notes ORDER BY v')))"
    )
    # Another process reads between the two commits, as a CLI next to the service would.
    seen = subprocess.run(
        [sys.executable, "-c", read, str(tmp_path / "x.db")], capture_output=True, text=True
    )
    assert seen.stdout.strip() == "one", seen.stderr
    with first.begin() as c:
        c.execute(text("INSERT INTO notes VALUES ('two')"))
    seen = subprocess.run(
        [sys.executable, "-c", read, str(tmp_path / "x.db")], capture_output=True, text=True
    )
    assert seen.stdout.strip() == "one,two", seen.stderr
    first.dispose()
