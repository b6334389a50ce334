"""Opening the index database: engines, migrations, schema checks and the writer lock.

SQLite is the default (one file in the data dir, WAL journal so readers never block the
writer); PostgreSQL is used with a ``postgresql+psycopg://`` URL. The schema is created and
changed only by the Alembic migrations shipped inside this package (``migrations/``), which run
from an installed wheel as well as from the source tree.

Every failure a user can fix — a malformed URL, an unreachable server, a read-only file, a
database written by a newer landscape — is a one-line :class:`DatabaseError`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.exc import DatabaseError as SqlDatabaseError
from sqlalchemy.orm import Session, sessionmaker

from landscape.errors import UserError
from landscape.settings import get_settings

__all__ = [
    "DatabaseError",
    "SchemaStatus",
    "current_revision",
    "has_table",
    "head_revision",
    "make_engine",
    "open_index",
    "resolve_url",
    "schema_status",
    "session_factory",
    "upgrade",
    "write_error",
    "writer_lock",
]

_MIGRATIONS = "landscape.index:migrations"
# An arbitrary 64-bit key: the PostgreSQL advisory lock held by the one writing `index` run.
_PG_LOCK_KEY = 0x6C616E64736361


class DatabaseError(UserError):
    """The index database cannot be opened, migrated or written as asked."""


def resolve_url(url: str | None) -> str:
    """``url``, or ``LANDSCAPE_DB``, or SQLite in the data dir (``LANDSCAPE_HOME``)."""
    return url or get_settings().database_url


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (search, the API) never block the writer; NORMAL sync is safe under WAL
    # (a power cut may lose the last transactions, never corrupt the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (see :func:`resolve_url`); SQLite files get their folder created.

    Raises :class:`DatabaseError` for a malformed URL or a missing driver.
    """
    url = resolve_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"not a database URL: {url!r}",
            fix="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        ) from exc
    kwargs: dict[str, Any] = {}
    sqlite_file = _sqlite_path(url)
    if sqlite_file is not None:
        try:
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the database folder ({exc.strerror})",
                path=sqlite_file.parent,
                fix="check permissions or pass --db",
            ) from exc
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseError(
            f"no driver for {parsed.drivername}",
            fix="pip install 'landscape[postgres]' for postgresql+psycopg URLs",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


# Driver messages (SQLite, psycopg) and errno names of the failures a user fixes on the machine.
_FULL = ("database or disk is full", "disk i/o error", "no space left", "file too large")
_DENIED = ("readonly database", "read-only", "permission denied", "unable to open database")


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect_error(url: str, exc: SQLAlchemyError) -> DatabaseError:
    reason = _reason(exc)
    if any(marker in reason.lower() for marker in _FULL):
        return write_error(url, exc)
    return DatabaseError(
        f"cannot open the database {_redacted(url)}: {reason}",
        fix="check the URL, that the server runs and that you may write there",
    )


def write_error(url: str, exc: BaseException) -> DatabaseError:
    """The one-line error for a write that failed: disk full (or a file-size limit), no
    permission, or anything else the database said. Every batch is one transaction, so what
    was committed before stays and the failed batch is redone by the next run."""
    reason = _reason(exc)
    lowered = reason.lower()
    where = _redacted(url)
    if any(marker in lowered for marker in _FULL):
        return DatabaseError(
            f"the disk is full (or a file-size limit was reached) writing the database {where}: "
            f"{reason}",
            fix="free some space and run the command again; nothing committed was lost and the "
            "interrupted batch is redone",
        )
    if any(marker in lowered for marker in _DENIED):
        return DatabaseError(
            f"no permission to write the database {where}: {reason}",
            fix="make the file and its folder writable for this user, or choose another --db",
        )
    return DatabaseError(
        f"writing the database {where} failed: {reason}",
        fix="check the server and the disk, then run the command again (nothing committed was "
        "lost)",
    )


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> Any:
    """The packaged migration scripts, read once per process (they never change under it)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    """The newest schema revision this version of landscape knows."""
    head: str = _scripts().get_current_head()
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database (``None``: no schema yet)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SqlDatabaseError as exc:
        raise _connect_error(str(engine.url), exc) from exc


def _known_revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


def _refuse_newer(engine: Engine, revision: str | None) -> None:
    if revision is not None and revision not in _known_revisions():
        raise DatabaseError(
            f"the database {_redacted(str(engine.url))} has schema revision {revision}, "
            f"newer than this landscape knows ({head_revision()})",
            fix="upgrade landscape, or use another --db",
        )


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the database to ``revision`` (default: the newest; creating the schema);
    return the revision it is at."""
    from alembic import command

    _refuse_newer(engine, current_revision(engine))
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
    except SqlDatabaseError as exc:
        raise _connect_error(str(engine.url), exc) from exc
    return head_revision() if revision == "head" else revision


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against this version of landscape."""

    current: str | None
    head: str
    #: differences between the database and the models (empty when they match)
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """At the newest revision and identical to the models."""
        return self.current == self.head and not self.differences


def _in_contract(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    """What the schema check compares: everything but the derived pgvector table (and its
    indexes), which :mod:`.vector_pg` creates where the extension exists."""
    table = getattr(obj, "table", obj) if kind in ("index", "column") else obj
    return getattr(table, "name", name) != "embedding_vectors"


def schema_status(engine: Engine) -> SchemaStatus:
    """Compare the database with the newest revision and with the models (autogenerate diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from .schema import Base

    current = current_revision(engine)
    _refuse_newer(engine, current)
    differences: tuple[str, ...] = ()
    if current is not None:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": _in_contract}
            )
            with warnings.catch_warnings():
                # Reflecting the derived pgvector table names a type SQLAlchemy does not know;
                # the table is left out of the comparison anyway (_in_contract).
                warnings.filterwarnings("ignore", "Did not recognize type 'halfvec'")
                differences = tuple(str(d) for d in compare_metadata(context, Base.metadata))
    return SchemaStatus(current, head_revision(), differences)


def open_index(url: str | None = None, *, create: bool = True) -> Engine:
    """An engine on an index at the newest schema: migrated when ``create``, else checked.

    A database of an older revision is upgraded in place (migrations are transactional on
    PostgreSQL; on SQLite each runs in one transaction). A newer one is refused.
    """
    engine = make_engine(url)
    sqlite_file = _sqlite_path(str(engine.url))
    if sqlite_file is not None:
        _probe(sqlite_file, write=create)
    if create:
        upgrade(engine)
        return engine
    current = current_revision(engine)
    _refuse_newer(engine, current)
    if current != head_revision():
        raise DatabaseError(
            f"the database {_redacted(str(engine.url))} is not at schema {head_revision()} "
            f"(it has {current or 'no schema'})",
            fix="run `landscape db upgrade`",
        )
    return engine


def _probe(path: Path, *, write: bool) -> None:
    """Check the SQLite file is accessible as the run will use it, so a permission problem is
    named as one (SQLite itself only says "unable to open database file").

    Never by opening the file: closing any descriptor of a database releases every POSIX lock
    this process holds on it, including those of another engine's open connections — other
    processes then checkpoint and delete the WAL under them, and their later commits are lost
    (https://www.sqlite.org/howtocorrupt.html, section 2.2)."""
    reason = None
    if path.is_dir():
        reason = "Is a directory"
    elif path.exists():
        if not os.access(path, os.R_OK | (os.W_OK if write else 0)):
            reason = "Permission denied"
    elif write:
        try:  # a new file: no connection can hold locks on it yet
            with open(path, "ab"):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
    if reason is not None:
        raise DatabaseError(
            f"cannot {'write' if write else 'read'} the database file ({reason})",
            path=path,
            fix="make the file and its folder accessible to this user, or choose another --db",
        )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (results outlive transactions)."""
    return sessionmaker(engine, expire_on_commit=False)


def has_table(engine: Engine, name: str) -> bool:
    """Whether ``name`` exists (for checks and tests)."""
    return inspect(engine).has_table(name)


@contextlib.contextmanager
def writer_lock(engine: Engine) -> Iterator[None]:
    """Hold the index's writer lock: one ``index``/``watch`` run writes at a time.

    SQLite: an exclusive file lock beside the database; PostgreSQL: a session advisory lock.
    A second writer is refused at once with a one-line error saying who holds it; readers
    (``search``, the API) never take it.
    """
    sqlite_file = _sqlite_path(str(engine.url))
    if engine.dialect.name == "sqlite":
        if sqlite_file is None:
            yield  # an in-memory database belongs to this process alone
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(sqlite_file) + ".writer.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise DatabaseError(
                "another `landscape index` or `watch` is writing to this database",
                path=sqlite_file,
                fix="wait for it to finish, or stop it",
            ) from exc
        try:
            yield
        finally:
            lock.release()
        return
    with engine.connect() as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        if not got.scalar():
            raise DatabaseError(
                f"another `landscape index` or `watch` is writing to {_redacted(str(engine.url))}",
                fix="wait for it to finish, or stop it",
            )
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            connection.commit()
