"""``watch``: follow storage roots and bring each settled change into the index.

The file system's events (inotify on Linux through watchdog, or polling for network shares
where another machine's writes raise no event) are only hints: a path that changed is *noted*,
and once its size and mtime have stayed the same for ``settle`` seconds it is handed, with the
other settled paths of its root, to :func:`~.pipeline.index_changes` — which decides what the
path now is (a new or changed file, a folder moved in, a path gone, a file moved). So a copy in
progress is never read half-written, a burst of events for one path is one job, and a lost or
duplicated event costs nothing a later one or the next catch-up does not repair.

On start the observer is scheduled *before* the catch-up scan (:func:`~.pipeline.run_index`,
with its unmount guard), so nothing that changes in between is lost; the settle logic folds the
overlap. A root that disappears while watched (deleted, unmounted, replaced) is reported and
dropped: its files are *not* marked missing, the others keep being watched, and when it comes
back it is caught up and watched again. When every root is gone, :meth:`Watcher.run` raises
:class:`~.scanner.RootError` (``landscape watch`` exits 1; a supervisor restarts it, and the
start-up catch-up's unmount guard refuses a root that is still an empty mount point).

Stopping (``stop`` set, e.g. by SIGTERM) ends the loop between two batches of at most
``_BATCH_PATHS`` paths: each write inside a batch is one transaction, so nothing is left half
written, and what was still pending is on disk for the next start's catch-up.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)

from landscape.errors import UserError

from .db import DatabaseError, session_factory
from .keyframes import keyframe_root
from .pipeline import IndexOptions, IndexSummary, index_changes, run_index
from .scanner import RootError, check_root
from .schema import File, Prediction, Root

__all__ = [
    "EVENT_TYPES",
    "EventHandler",
    "Report",
    "Settler",
    "WatchStats",
    "Watcher",
    "event_paths",
    "path_signature",
]

#: one event of the watcher's log: ``{"event": "indexed", "time": ..., "path": ..., ...}``
Report = Callable[[dict[str, Any]], None]

#: what the observer is asked for: changes only. Opens and reads (``IN_OPEN``,
#: ``IN_CLOSE_NOWRITE``) are left out, so the indexer reading a file never wakes itself up.
EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,  # utime after a copy (cp -p, rsync -t) changes only the mtime
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]

# At most this many settled paths per index_changes call: the loop looks at the stop event
# between calls, so a shutdown waits for one such batch, not for a whole folder's worth.
_BATCH_PATHS = 256
# Seconds between checks that each root is still the folder that was scheduled, and between
# attempts to bring a gone one back.
_ROOT_CHECK = 1.0
_RETRY = 2.0
_LOOKUP_CHUNK = 256
_PREFIX_CHUNK = 64

#: a path's state as far as settling goes; ``None`` means it does not exist
Signature = tuple[int, ...] | None


# --------------------------------------------------------------------------------------------
# Settling: a path is read only once it has stopped changing


def path_signature(path: Path) -> Signature:
    """What must stay the same for ``path`` to count as settled: a file's inode, size and mtime;
    a folder's file count, total size and newest mtime (a folder copied in settles when every
    file in it has); ``None`` when the path does not exist. An unreadable path is stable (it
    is reported as a problem when read, not waited on forever)."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return (-1, exc.errno or 0)
    if not stat.S_ISDIR(info.st_mode):
        return (0, info.st_ino, info.st_size, info.st_mtime_ns)
    count, total, newest = 0, 0, info.st_mtime_ns
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable: the walk in index_changes records it
        for entry in entries:
            try:
                item = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(item.st_mode):
                stack.append(Path(entry.path))
            count += 1
            total += item.st_size
            newest = max(newest, item.st_mtime_ns)
    return (1, info.st_ino, count, total, newest)


@dataclass
class _Pending:
    signature: Signature
    due: float


class Settler:
    """Debounces noted paths until they are settled: unchanged for ``settle`` seconds.

    Pure apart from ``signature`` (:func:`path_signature` by default) and the clock, which the
    caller passes in (``now``): tests drive it with a fake clock. Not thread-safe (the
    :class:`Watcher` guards it with a lock).

    A path noted again before it is ready waits ``settle`` seconds from the new note (a burst
    of events is one job). When it comes due its signature is taken again: unchanged since it
    was noted, it is ready; changed (a copy still growing without events, as on a network
    share), it waits another ``settle`` seconds. A path that no longer exists settles the same
    way, as gone (``index_changes`` marks it missing); one deleted and created again within the
    time is whatever it is at the end.
    """

    def __init__(
        self, settle: float, *, signature: Callable[[Path], Signature] = path_signature
    ) -> None:
        if settle < 0:
            raise ValueError(f"settle must be >= 0, got {settle}")
        self.settle = settle
        self._signature = signature
        self._pending: dict[Path, _Pending] = {}

    def __len__(self) -> int:
        """How many paths wait to settle (the queue length)."""
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return path in self._pending

    def note(self, path: Path, now: float, *, delay: float | None = None) -> bool:
        """Note that ``path`` changed at ``now``; it is looked at again ``delay`` seconds later
        (default ``settle``). True when the path was not already waiting (a new job)."""
        wait = self.settle if delay is None else delay
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = _Pending(self._signature(path), now + wait)
            return True
        # Only the time moves: the signature noted first is what "unchanged" compares with.
        entry.due = max(entry.due, now + wait)
        return False

    def ready(self, now: float) -> list[Path]:
        """The paths settled by ``now`` (sorted), removed from the queue; paths that changed
        since they were noted wait ``settle`` seconds more."""
        out: list[Path] = []
        for path, entry in list(self._pending.items()):
            if now < entry.due:
                continue
            current = self._signature(path)
            if current != entry.signature:
                entry.signature, entry.due = current, now + self.settle
                continue
            del self._pending[path]
            out.append(path)
        return sorted(out)

    def discard_under(self, root: Path) -> int:
        """Forget the paths at or under ``root`` (a root that went away); how many."""
        gone = [p for p in self._pending if p == root or root in p.parents]
        for path in gone:
            del self._pending[path]
        return len(gone)


# --------------------------------------------------------------------------------------------
# Events → noted paths


def event_paths(event: FileSystemEvent) -> list[Path]:
    """The paths a watchdog event asks to look at: both ends of a move (the source to mark
    missing or moved, the destination to read), the path of anything else that changes
    content or existence. Folder "modified" events (an entry added or removed: the entry has
    its own event), attribute-only folder events, opens and reads name nothing."""
    if event.event_type in ("opened", "closed_no_write"):
        return []
    if event.is_directory and event.event_type in ("modified", "attrib", "closed"):
        return []
    paths = [Path(os.fsdecode(event.src_path))]
    if isinstance(event, FileSystemMovedEvent) and event.dest_path:
        paths.append(Path(os.fsdecode(event.dest_path)))
    return paths


class EventHandler(FileSystemEventHandler):
    """Hands the paths of each watchdog event (:func:`event_paths`) to ``note``; runs on the
    observer's thread."""

    def __init__(self, note: Callable[[Path], None]) -> None:
        super().__init__()
        self._note = note

    def dispatch(self, event: FileSystemEvent) -> None:
        for path in event_paths(event):
            self._note(path)


# --------------------------------------------------------------------------------------------
# The watcher


@dataclass
class WatchStats:
    """Counts for the status line: paths the file system reported (a burst counts once), files
    indexed (new, changed, moved; catch-ups included), failed, marked missing, and the queue."""

    seen: int = 0
    indexed: int = 0
    failed: int = 0
    missing: int = 0
    queued: int = 0
    #: files the running catch-up scan has done, of how many (0, 0 when none runs)
    catching_up: tuple[int, int] = (0, 0)

    def line(self) -> str:
        """``12 seen · 10 indexed · 1 failed · 1 missing · 0 queued`` (+ the catch-up)."""
        text = (
            f"{self.seen} seen · {self.indexed} indexed · {self.failed} failed · "
            f"{self.missing} missing · {self.queued} queued"
        )
        done, total = self.catching_up
        return text + (f" · catching up {done}/{total}" if total else "")


@dataclass
class _WatchedRoot:
    path: Path
    watch: Any = None  # watchdog's ObservedWatch while watched
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) when scheduled
    gone: str | None = None  # why it is not watched (None: watched)
    retry_at: float = 0.0


@dataclass(frozen=True)
class _Row:
    """The columns of a file row that say whether a batch changed it."""

    id: int
    relative_path: str
    status: str
    content_hash: str | None
    size: int
    mtime_ns: int
    media_type: str
    error: str | None


class _Stopped(Exception):
    """Raised from the catch-up's progress callback when a stop is asked for: a full scan has
    no other way out, and it commits per batch, so leaving between two batches is safe."""


class Watcher:
    """Watch ``roots`` and index what changes in them into ``engine``'s database.

    :meth:`run` blocks until ``stop`` is set (a signal handler, or a test's thread) and reports
    what happens through ``report`` as plain dicts (``{"event": ..., ...}``): ``started``,
    ``caught_up``, ``indexed``, ``missing``, ``failed``, ``root_gone``, ``root_back``,
    ``rescan``, ``status`` (every ``status_every`` seconds) and ``stopped``.
    """

    def __init__(
        self,
        engine: Engine,
        roots: Sequence[Path],
        *,
        predictor: Any = None,
        options: IndexOptions | None = None,
        settle: float = 2.0,
        poll: bool = False,
        poll_interval: float = 5.0,
        report: Report | None = None,
        status_every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.predictor = predictor
        self.options = options or IndexOptions()
        self.poll = poll
        self.poll_interval = poll_interval
        self.status_every = status_every
        self.stats = WatchStats()
        self._requested = list(roots)
        self._report = report or (lambda event: None)
        self._clock = clock
        self._settler = Settler(settle)
        self._lock = threading.Lock()  # the settler, between the observer thread and the loop
        self._roots: list[_WatchedRoot] = []
        self._root_ids: dict[Path, int] = {}
        self._ignored = _own_files(engine)
        self._rescan = threading.Event()  # the kernel dropped events: a catch-up repairs that
        self._stop = threading.Event()
        self._observer: Any = None

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Schedule the observer, catch up, then index settled changes until ``stop`` is set.

        Raises :class:`RootError` for a root missing at start or when every root has gone,
        :class:`~.db.DatabaseError` when the catch-up cannot write (another writer, a full
        disk) and a :class:`UserError` when the system's watch limit is reached.
        """
        self._stop = stop
        self._roots = [_WatchedRoot(p) for p in _unique(check_root(r) for r in self._requested)]
        started = self._clock()
        with _quiet_watchdog(self._rescan):
            self._observer = _observer(self.poll, self.poll_interval)
            self._observer.start()
            try:
                for root in self._roots:
                    self._schedule(root)
                self._emit(
                    "started",
                    roots=[str(r.path) for r in self._roots],
                    mode="polling" if self.poll else "events",
                    settle=self._settler.settle,
                    model_id=getattr(self.predictor, "model_id", None),
                )
                self._catch_up(self._roots)
                self._loop()
            except _Stopped:
                pass
            except UserError as exc:
                seconds = round(self._clock() - started, 3)
                self._emit("stopped", error=str(exc), seconds=seconds, **self._counts())
                raise
            finally:
                self._observer.stop()
                self._observer.join(timeout=10)
        self._emit("stopped", seconds=round(self._clock() - started, 3), **self._counts())

    def _loop(self) -> None:
        tick = min(0.25, max(0.02, self._settler.settle / 4))
        next_check = self._clock()
        next_status = next_check + (self.status_every or 0.0)
        while not self._stop.is_set():
            now = self._clock()
            if now >= next_check:
                self._check_roots(now)
                next_check = now + _ROOT_CHECK
            if self._rescan.is_set():
                self._rescan.clear()
                watched = [r for r in self._roots if r.gone is None]
                self._emit("rescan", reason="the kernel's event queue overflowed")
                self._catch_up(watched)
            with self._lock:
                ready = self._settler.ready(self._clock())
            if ready:
                self._index(ready)
            self.stats.queued = len(self._settler)
            if self.status_every is not None and now >= next_status:
                self._emit("status", **self._counts())
                next_status = now + self.status_every
            self._stop.wait(tick)

    # -- events from the observer --------------------------------------------------------------

    def _note(self, path: Path) -> None:
        path = Path(os.path.abspath(path))
        if self._is_ignored(path):
            return
        with self._lock:
            if self._settler.note(path, self._clock()):
                self.stats.seen += 1
            self.stats.queued = len(self._settler)

    def _is_ignored(self, path: Path) -> bool:
        """The index's own files (a database kept inside a watched root would otherwise be
        re-read after every write it makes)."""
        text = str(path)
        return any(text == own or text.startswith(own) for own in self._ignored)

    # -- roots ---------------------------------------------------------------------------------

    def _schedule(self, root: _WatchedRoot) -> None:
        try:
            info = os.stat(root.path)
            root.watch = self._observer.schedule(
                EventHandler(self._note), str(root.path), recursive=True, event_filter=EVENT_TYPES
            )
        except FileNotFoundError as exc:
            raise RootError("does not exist", path=root.path) from exc
        except OSError as exc:
            raise UserError(
                f"cannot watch {root.path}: {exc.strerror or exc}",
                fix="raise fs.inotify.max_user_watches (sysctl), or pass --poll",
            ) from exc
        root.identity = (info.st_dev, info.st_ino)
        root.gone = None

    def _unschedule(self, root: _WatchedRoot) -> None:
        if root.watch is not None:
            with suppress(KeyError, OSError):  # its emitter may have stopped by itself
                self._observer.unschedule(root.watch)
            root.watch = None

    def _check_roots(self, now: float) -> None:
        """A watched root still the scheduled folder? A gone one back?"""
        for root in self._roots:
            if root.gone is None:
                reason = _root_changed(root, self._observer)
                if reason is not None:
                    self._lose(root, reason, now)
            elif now >= root.retry_at:
                self._try_back(root, now)
        if all(r.gone is not None for r in self._roots):
            raise RootError(
                "every watched root is gone ("
                + "; ".join(f"{r.path}: {r.gone}" for r in self._roots)
                + ")",
                fix="mount or restore them and start `landscape watch` again",
            )

    def _lose(self, root: _WatchedRoot, reason: str, now: float) -> None:
        """A root went away: stop watching it, forget its pending paths, and say so. Its files
        are left as they are (an unmounted share's files are not missing)."""
        self._unschedule(root)
        root.gone, root.retry_at = reason, now + _RETRY
        with self._lock:
            self._settler.discard_under(root.path)
        self._emit("root_gone", root=str(root.path), reason=reason)

    def _try_back(self, root: _WatchedRoot, now: float) -> None:
        root.retry_at = now + _RETRY
        if not root.path.is_dir():
            return
        try:
            self._schedule(root)
        except UserError:
            return
        try:
            self._catch_up([root])
        except (RootError, DatabaseError) as exc:
            # Still an empty mount point (the unmount guard), or another writer: later.
            self._unschedule(root)
            reason = str(exc)
            if reason != root.gone:
                self._emit("root_gone", root=str(root.path), reason=reason)
            root.gone = reason
            return
        self._emit("root_back", root=str(root.path))

    # -- indexing ------------------------------------------------------------------------------

    def _catch_up(self, roots: Sequence[_WatchedRoot]) -> None:
        """The incremental scan of ``roots`` (what changed while nobody watched)."""
        if not roots:
            return
        began = self._clock()
        summary = run_index(
            self.engine,
            [r.path for r in roots],
            predictor=self.predictor,
            options=self.options,
            progress=self._progress,
        )
        outcomes = summary.outcomes
        self.stats.indexed += sum(outcomes[k] for k in ("new", "changed", "moved", "reclassified"))
        self.stats.failed += outcomes["failed"]
        self.stats.missing += outcomes["missing"]
        self._emit(
            "caught_up",
            roots=[str(r.path) for r in roots],
            scan_id=summary.scan_id,
            outcomes=dict(outcomes),
            problems=len(summary.problems),
            seconds=round(self._clock() - began, 3),
        )

    @contextmanager
    def _progress(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """run_index's progress bar: counts for the status line, and the way out on stop."""
        done = 0
        self.stats.catching_up = (0, total)

        def advance(n: int = 1, note: str | None = None) -> None:
            nonlocal done
            done += n
            self.stats.catching_up = (done, total)
            if self._stop.is_set():
                raise _Stopped

        try:
            yield advance
        finally:
            self.stats.catching_up = (0, 0)

    def _index(self, paths: list[Path]) -> None:
        """Settled paths, by root, in batches of at most ``_BATCH_PATHS``."""
        by_root: dict[Path, list[Path]] = {}
        for path in paths:
            root = self._root_of(path)
            if root is not None and path != root.path:
                by_root.setdefault(root.path, []).append(path)
        for root_path, mine in by_root.items():
            for start in range(0, len(mine), _BATCH_PATHS):
                if self._stop.is_set():
                    return  # the rest is on disk: the next start's catch-up reads it
                root = next(r for r in self._roots if r.path == root_path)
                if root.gone is not None:
                    break
                self._index_batch(root, mine[start : start + _BATCH_PATHS])

    def _root_of(self, path: Path) -> _WatchedRoot | None:
        # The innermost watched root holding the path (roots may nest).
        holding = [
            r for r in self._roots if r.gone is None and (path == r.path or r.path in path.parents)
        ]
        return max(holding, key=lambda r: len(r.path.parts), default=None)

    def _index_batch(self, root: _WatchedRoot, paths: list[Path]) -> None:
        """One ``index_changes`` call, and an event per file it changed."""
        rels = {p: p.relative_to(root.path).as_posix() for p in paths}
        # Folders (and gone paths, which may have been folders) stand for every file under them.
        prefixes = [rels[p] for p in paths if not p.is_file()]
        with session_factory(self.engine)() as session:
            root_id = self._root_id(session, root.path)
            before = _snapshot(session, root_id, list(rels.values()), prefixes)
            newest = int(session.scalar(select(func.max(File.id))) or 0)
        try:
            summary = index_changes(
                self.engine, root.path, paths, predictor=self.predictor, options=self.options
            )
        except RootError:
            self._lose(root, "does not exist", self._clock())
            return
        except DatabaseError as exc:
            # Another writer holds the lock, or the disk is full: try these paths again later.
            self._emit("failed", root=str(root.path), error=str(exc), retry=_RETRY * 5)
            with self._lock:
                for path in paths:
                    self._settler.note(path, self._clock(), delay=_RETRY * 5)
            return
        with session_factory(self.engine)() as session:
            after = _snapshot(session, root_id, list(rels.values()), prefixes)
            self._report_batch(session, root.path, before, after, newest, summary)

    def _root_id(self, session: Session, root: Path) -> int:
        if root not in self._root_ids:
            found = session.scalar(select(Root.id).where(Root.path == str(root)))
            self._root_ids[root] = int(found) if found is not None else -1
        return self._root_ids[root]

    def _report_batch(
        self,
        session: Session,
        root: Path,
        before: dict[str, _Row],
        after: dict[str, _Row],
        newest: int,
        summary: IndexSummary,
    ) -> None:
        """Events for what the batch changed: a row whose content, status or path is new."""
        was = {row.id: row for row in before.values()}
        indexed: list[tuple[_Row, str, str | None]] = []
        for rel, row in sorted(after.items()):
            old = before.get(rel)
            if old is not None and (old.content_hash, old.status) == (row.content_hash, row.status):
                continue  # seen again, or only its mtime moved: nothing new to say
            if row.status == "missing":
                if old is not None:
                    self.stats.missing += 1
                    self._emit("missing", path=str(root / rel), file_id=row.id)
            elif row.status in ("error", "quarantined"):
                self.stats.failed += 1
                self._emit("failed", path=str(root / rel), file_id=row.id, error=row.error)
            elif old is not None:
                indexed.append((row, "changed", None))
            elif row.id <= newest:  # an existing file found at a new path by its content
                source = was.get(row.id)
                indexed.append((row, "moved", source.relative_path if source else None))
            else:
                indexed.append((row, "new", None))
        labels = _labels(session, [row.id for row, _, _ in indexed], summary.model_id)
        for row, outcome, moved_from in indexed:
            self.stats.indexed += 1
            extra: dict[str, Any] = {"from": str(root / moved_from)} if moved_from else {}
            label, confidence = labels.get(row.id, (None, None))
            self._emit(
                "indexed",
                path=str(root / row.relative_path),
                file_id=row.id,
                outcome=outcome,
                media=row.media_type,
                label=label,
                confidence=None if confidence is None else round(confidence, 4),
                **extra,
            )
        # Problems without a row: a folder that cannot be listed, a path that cannot be stat'ed.
        for rel, error in summary.problems:
            if rel not in after:
                self.stats.failed += 1
                self._emit("failed", path=str(root / rel), error=error)

    # -- reporting -----------------------------------------------------------------------------

    def _counts(self) -> dict[str, Any]:
        counts = asdict(self.stats)
        counts.pop("catching_up")
        return counts

    def _emit(self, event: str, **fields: Any) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._report({"event": event, "time": now, **fields})


# --------------------------------------------------------------------------------------------
# Helpers


def _unique(paths: Iterator[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def _observer(poll: bool, interval: float) -> Any:
    """inotify (Linux; FSEvents, kqueue, ReadDirectoryChangesW elsewhere), or polling: a
    snapshot of the tree every ``interval`` seconds, which sees a share's remote writes."""
    if poll:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=interval)
    from watchdog.observers import Observer

    return Observer()


def _root_changed(root: _WatchedRoot, observer: Any) -> str | None:
    """Why a watched root no longer is what was scheduled (None: it still is)."""
    try:
        info = os.stat(root.path)
    except OSError as exc:
        return "does not exist" if exc.errno == errno.ENOENT else f"cannot be read ({exc.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if (info.st_dev, info.st_ino) != root.identity:
        return "was unmounted or replaced"
    # The emitter stops by itself when its folder goes (inotify IN_IGNORED); one that stopped
    # while the folder stays is watching nothing.
    emitters = [e for e in getattr(observer, "emitters", ()) if e.watch == root.watch]
    if emitters and not any(e.is_alive() for e in emitters):
        return "stopped being watched"
    return None


def _own_files(engine: Engine) -> list[str]:
    """Path prefixes of the index's own files: a SQLite database with its journal and lock
    files, and the keyframe folder."""
    own = [str(keyframe_root(engine.url))]
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        own.append(str(Path(database).expanduser().resolve()))
    return own


def _snapshot(
    session: Session, root_id: int, exact: list[str], prefixes: list[str]
) -> dict[str, _Row]:
    """The rows at ``exact`` relative paths and under each of ``prefixes``."""
    columns = (
        File.id,
        File.relative_path,
        File.status,
        File.content_hash,
        File.size,
        File.mtime_ns,
        File.media_type,
        File.error,
    )
    rows: dict[str, _Row] = {}
    for start in range(0, len(exact), _LOOKUP_CHUNK):
        chunk = exact[start : start + _LOOKUP_CHUNK]
        query = select(*columns).where(File.root_id == root_id, File.relative_path.in_(chunk))
        rows.update({r.relative_path: _Row(*r) for r in session.execute(query)})
    for start in range(0, len(prefixes), _PREFIX_CHUNK):
        chunk = prefixes[start : start + _PREFIX_CHUNK]
        under = or_(*(File.relative_path.startswith(p + "/", autoescape=True) for p in chunk))
        query = select(*columns).where(File.root_id == root_id, under)
        rows.update({r.relative_path: _Row(*r) for r in session.execute(query)})
    return rows


def _labels(
    session: Session, file_ids: list[int], model_id: str | None
) -> dict[int, tuple[str, float]]:
    """The model's label and confidence of each file (a video's whole-video row)."""
    if not file_ids or model_id is None:
        return {}
    query = select(Prediction.file_id, Prediction.label, Prediction.confidence).where(
        Prediction.file_id.in_(file_ids),
        Prediction.model_id == model_id,
        Prediction.segment == 0,
    )
    return {file_id: (label, confidence) for file_id, label, confidence in session.execute(query)}


class _WatchdogLog(logging.Handler):
    """watchdog's own log, kept off stderr: a queue overflow (events lost) asks for a rescan."""

    def __init__(self, rescan: threading.Event) -> None:
        super().__init__(logging.WARNING)
        self._rescan = rescan

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._rescan.set()


@contextmanager
def _quiet_watchdog(rescan: threading.Event) -> Iterator[None]:
    logger = logging.getLogger("watchdog")
    handler = _WatchdogLog(rescan)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    # watchdog 7 warns (RuntimeWarning) when a folder moved back in is watched again; the
    # watch is right, the warning is noise on a one-line-per-event stderr.
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
