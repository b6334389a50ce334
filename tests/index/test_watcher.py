"""``landscape watch``: settled events into the index, catch-up on start, clean stops.

The settling logic is tested with a fake clock on real files; the command itself runs as a user
runs it, in a process of its own on real folders (to copy into slowly, move, delete, unmount,
SIGTERM and kill -9).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from landscape.index.db import open_index
from landscape.index.pipeline import IndexOptions
from landscape.index.watcher import Settler, Watcher, event_paths
from tests.conftest import CliResult

Event = dict[str, Any]


def _jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A real JPEG of noise (about 60 KB: big enough to copy in visible chunks)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _wait(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


# --------------------------------------------------------------------------------------------
# Settler: a fake clock, real files


def test_a_growing_file_is_ready_only_once_it_stops_growing(tmp_path: Path) -> None:
    path = tmp_path / "copy.jpg"
    path.write_bytes(b"x" * 100)
    settler = Settler(1.0)
    assert settler.note(path, now=0.0)
    assert settler.ready(0.5) == []  # not due
    with path.open("ab") as fh:  # grows without an event (a share, a silent writer)
        fh.write(b"y" * 100)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert settler.ready(1.0) == []  # due, but changed since noted: another second
    assert settler.ready(1.9) == []
    assert settler.ready(2.0) == [path]
    assert len(settler) == 0 and settler.ready(10.0) == []


def test_a_burst_of_events_is_one_job_after_the_last(tmp_path: Path) -> None:
    path = tmp_path / "burst.jpg"
    path.write_bytes(b"x")
    settler = Settler(1.0)
    assert [settler.note(path, t) for t in (0.0, 0.3, 0.6)] == [True, False, False]
    assert len(settler) == 1
    assert settler.ready(1.5) == []  # 1 s after the last event, not the first
    assert settler.ready(1.6) == [path]
    assert settler.ready(5.0) == []


def test_a_deleted_path_is_ready_after_settle_as_gone(tmp_path: Path) -> None:
    gone = tmp_path / "deleted.jpg"
    settler = Settler(0.5)
    settler.note(gone, 0.0)  # the delete event comes after the delete
    assert settler.ready(0.4) == []
    assert settler.ready(0.5) == [gone] and not gone.exists()
    # Created then deleted before it settled: the change is seen, and it is gone a bit later.
    brief = tmp_path / "brief.jpg"
    brief.write_bytes(b"x")
    settler.note(brief, 1.0)
    brief.unlink()
    assert settler.ready(1.5) == []
    assert settler.ready(2.0) == [brief]


def test_a_folder_settles_when_every_file_in_it_has(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    settler = Settler(1.0)
    settler.note(folder, 0.0)
    (folder / "a.jpg").write_bytes(b"x" * 10)  # copied in after the folder appeared
    assert settler.ready(1.0) == []
    assert settler.ready(2.0) == [folder]
    settler.note(folder, 3.0)
    assert settler.discard_under(tmp_path) == 1 and len(settler) == 0


def test_events_name_the_paths_to_look_at() -> None:
    assert event_paths(FileMovedEvent("/r/a.jpg", "/r/b.jpg")) == [
        Path("/r/a.jpg"),
        Path("/r/b.jpg"),
    ]
    assert event_paths(DirMovedEvent(b"/r/d", b"/r/e")) == [Path("/r/d"), Path("/r/e")]
    assert event_paths(FileCreatedEvent("/r/a.jpg")) == [Path("/r/a.jpg")]
    assert event_paths(FileClosedEvent("/r/a.jpg")) == [Path("/r/a.jpg")]
    assert event_paths(DirCreatedEvent("/r/d")) == [Path("/r/d")]
    assert event_paths(DirDeletedEvent("/r/d")) == [Path("/r/d")]
    # A folder's "modified" (an entry came or went: it has its own event) and reads: nothing.
    for quiet in (DirModifiedEvent("/r"), FileOpenedEvent("/r/a"), FileClosedNoWriteEvent("/r/a")):
        assert event_paths(quiet) == []


# --------------------------------------------------------------------------------------------
# The Watcher in a thread (no model: metadata only)


def test_watcher_in_a_thread_indexes_a_folder_moved_in_and_stops(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "a.jpg").write_bytes(_jpeg(1, (64, 48)))
    (outside / "b.jpg").write_bytes(_jpeg(2, (64, 48)))
    events: list[Event] = []
    watcher = Watcher(
        open_index(f"sqlite:///{tmp_path / 'w.db'}"),
        [root],
        options=IndexOptions(workers=1, memory_mb=None),
        settle=0.2,
        report=events.append,
    )
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        _wait(lambda: any(e["event"] == "caught_up" for e in events), 30, "the catch-up")
        shutil.move(str(outside), str(root / "moved-in"))
        _wait(lambda: len([e for e in events if e["event"] == "indexed"]) >= 2, 30, "2 files")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    indexed = {e["path"] for e in events if e["event"] == "indexed"}
    assert indexed == {str(root / "moved-in" / "sub" / "a.jpg"), str(root / "moved-in" / "b.jpg")}
    assert events[-1]["event"] == "stopped" and events[-1]["indexed"] == 2


# --------------------------------------------------------------------------------------------
# `landscape watch` as a process


class _Watch:
    """``landscape watch ... --json`` in a process of its own; its events as they come."""

    def __init__(self, *args: str | Path, wrapper: list[str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "LANDSCAPE_MODEL"}
        command = [sys.executable, "-m", "landscape", "watch", *map(str, args), "--json"]
        self.proc = subprocess.Popen(
            [*(wrapper or []), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.events: list[Event] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.err = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def wait_for(self, seconds: float = 30, **fields: Any) -> Event:
        """The first event with these fields, waiting up to ``seconds``."""

        def found() -> Event | None:
            for event in list(self.events):
                if all(event.get(k) == v for k, v in fields.items()):
                    return event
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"watch exited {self.proc.returncode}: {self._stderr()}")
            return None

        event: Event = _wait(found, seconds, f"an event {fields}")
        return event

    def of(self, kind: str, path: Path | None = None) -> list[Event]:
        return [
            e
            for e in list(self.events)
            if e["event"] == kind and (path is None or e.get("path") == str(path))
        ]

    def stop(self, sig: signal.Signals = signal.SIGTERM, seconds: float = 60) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(seconds)
        self._reader.join(5)
        self._stderr()
        return code

    def _stderr(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr is not None and not self.err:
            self.err = self.proc.stderr.read()
        return self.err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def watching() -> Iterator[Callable[..., _Watch]]:
    """Start watchers; whatever a test leaves running is killed."""
    started: list[_Watch] = []

    def start(*args: str | Path, wrapper: list[str] | None = None) -> _Watch:
        started.append(_Watch(*args, wrapper=wrapper))
        return started[-1]

    yield start
    for watch in started:
        watch.kill()


def _row(db: Path, relative_path: str) -> tuple[Any, ...] | None:
    with sqlite3.connect(db, timeout=10) as con:
        row: tuple[Any, ...] | None = con.execute(
            "SELECT id, size, status FROM files WHERE relative_path = ?", (relative_path,)
        ).fetchone()
    return row


def _scalar(db: Path, sql: str, *params: Any) -> Any:
    with sqlite3.connect(db, timeout=10) as con:
        return con.execute(sql, params).fetchone()[0]


def _integrity(db: Path) -> str:
    return str(_scalar(db, "PRAGMA integrity_check"))


def test_watch_indexes_a_slow_copy_once_then_a_move_and_a_delete(
    tmp_path: Path, tiny_run: Path, watching: Callable[..., _Watch]
) -> None:
    root, db = tmp_path / "photos", tmp_path / "watch.db"
    root.mkdir()
    watch = watching(
        root, "--db", f"sqlite:///{db}", "--model", tiny_run / "bundle",
        "--settle", "0.5", "--workers", "1",
    )  # fmt: skip
    watch.wait_for(120, event="caught_up")

    # Copied in slowly, in chunks over ~1.5 s: read once, whole, after the copy ends.
    data, target = _jpeg(3), root / "copy.jpg"
    with target.open("wb") as fh:
        for start in range(0, len(data), len(data) // 10 + 1):
            fh.write(data[start : start + len(data) // 10 + 1])
            fh.flush()
            time.sleep(0.15)
    copied = len(watch.events)
    event = watch.wait_for(event="indexed", path=str(target))
    assert all(e.get("path") != str(target) for e in watch.events[:copied])  # not before
    assert event["outcome"] == "new" and event["label"] is not None
    time.sleep(1.0)  # a second job for it would have come by now
    assert len(watch.of("indexed", target)) == 1
    file_id, size, status = _row(db, "copy.jpg") or (None, 0, "")
    assert (size, status) == (len(data), "ok")
    assert _scalar(db, "SELECT count(*) FROM predictions WHERE file_id = ?", file_id) == 1

    # Moved: the same file (id, prediction) at the new path.
    renamed = root / "renamed.jpg"
    target.rename(renamed)
    moved = watch.wait_for(event="indexed", path=str(renamed))
    assert moved["outcome"] == "moved" and moved["file_id"] == file_id
    assert _row(db, "renamed.jpg") == (file_id, len(data), "ok") and _row(db, "copy.jpg") is None

    # Deleted: kept, marked missing.
    renamed.unlink()
    watch.wait_for(event="missing", path=str(renamed))
    assert _row(db, "renamed.jpg") == (file_id, len(data), "missing")

    assert watch.stop(signal.SIGTERM) == 0, watch.err
    assert watch.events[-1]["event"] == "stopped"
    assert "Traceback" not in watch.err
    assert _integrity(db) == "ok"


def test_kill_9_then_restart_catches_up_every_file_exactly_once(
    tmp_path: Path, tiny_run: Path, watching: Callable[..., _Watch]
) -> None:
    root, db = tmp_path / "photos", tmp_path / "watch.db"
    root.mkdir()
    args = (root, "--db", f"sqlite:///{db}", "--model", tiny_run / "bundle", "--workers", "1")
    first = watching(*args, "--settle", "30")  # nothing settles before the kill
    first.wait_for(120, event="caught_up")
    half = _jpeg(10)
    pending = root / "pending.jpg"
    pending.write_bytes(half[: len(half) // 2])  # noted, not yet read
    time.sleep(0.5)  # the events reach the watcher, which waits for 30 s of quiet
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(30)
    assert _integrity(db) == "ok"

    with pending.open("ab") as fh:  # the copy ends while nobody watches
        fh.write(half[len(half) // 2 :])
    (root / "later").mkdir()
    for seed in (11, 12):
        (root / "later" / f"{seed}.jpg").write_bytes(_jpeg(seed))

    second = watching(*args, "--settle", "0.3")
    caught = second.wait_for(120, event="caught_up")
    assert caught["outcomes"]["new"] == 3
    time.sleep(1.0)  # events from the catch-up's own reads would have settled by now
    assert second.of("indexed") == []
    assert second.stop() == 0, second.err
    with sqlite3.connect(db) as con:
        paths = [r[0] for r in con.execute("SELECT relative_path FROM files")]
        per_file = con.execute("SELECT file_id, count(*) FROM predictions GROUP BY file_id")
        predictions = sorted(n for _, n in per_file)
    assert sorted(paths) == ["later/11.jpg", "later/12.jpg", "pending.jpg"]  # each once
    assert predictions == [1, 1, 1]
    _, size, status = _row(db, "pending.jpg") or (None, 0, "")
    assert (size, status) == (len(half), "ok")  # whole: read after the copy ended
    assert _integrity(db) == "ok"


def _without_file_permission_override() -> list[str] | None:
    """A root user reads any folder: drop the capabilities that allow it (setpriv), so a
    chmod 000 folder is as unreadable as for anyone else; None where that cannot be done."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def test_unreadable_folders_and_roots_that_go_away(
    tmp_path: Path, watching: Callable[..., _Watch]
) -> None:
    wrapper = _without_file_permission_override()
    if wrapper is None:
        pytest.skip("running as root without setpriv: no folder is unreadable")
    a, b, db = tmp_path / "a", tmp_path / "b", tmp_path / "watch.db"
    (a / "locked").mkdir(parents=True)
    (a / "locked" / "hidden.jpg").write_bytes(_jpeg(20, (64, 48)))
    b.mkdir()
    (b / "first.jpg").write_bytes(_jpeg(21, (64, 48)))
    (a / "locked").chmod(0)
    try:
        watch = watching(a, b, "--db", f"sqlite:///{db}", "--settle", "0.3", wrapper=wrapper)
        caught = watch.wait_for(60, event="caught_up")
        assert caught["outcomes"].get("failed") == 1 and caught["problems"] == 1

        # A folder that becomes unreadable while watched: a problem, never a crash.
        late = a / "late"
        late.mkdir()
        late.chmod(0)
        failed = watch.wait_for(event="failed", path=str(late))
        assert "Permission denied" in failed["error"]

        # One root deleted: an event and a one-line warning; the other is still watched.
        shutil.rmtree(b)
        gone = watch.wait_for(event="root_gone", root=str(b))
        assert gone["reason"] == "does not exist"
        (a / "still.jpg").write_bytes(_jpeg(22, (64, 48)))
        watch.wait_for(event="indexed", path=str(a / "still.jpg"))
        # It comes back: caught up (its old file is missing, the new one is read), watched again.
        b.mkdir()
        (b / "back.jpg").write_bytes(_jpeg(23, (64, 48)))
        watch.wait_for(event="root_back", root=str(b))
        _wait(lambda: (_row(db, "back.jpg") or (0, 0, ""))[2] == "ok", 30, "back.jpg indexed")
        assert (_row(db, "first.jpg") or (0, 0, ""))[2] == "missing"
        (b / "watched.jpg").write_bytes(_jpeg(24, (64, 48)))
        watch.wait_for(event="indexed", path=str(b / "watched.jpg"))

        # Every root gone: exit 1 with one line, after the event log says so.
        (a / "locked").chmod(0o755)
        late.chmod(0o755)
        shutil.rmtree(a)
        shutil.rmtree(b)
        code = watch.proc.wait(30)
        watch.stop()  # collects stderr
    finally:
        for folder in (a / "locked", a / "late"):
            if folder.exists():
                folder.chmod(0o755)
    assert code == 1
    lines = watch.err.strip().splitlines()
    assert lines[0] == f"warning: {b}: does not exist"  # b's going: one line of its own
    assert all(line.startswith(("warning: ", "error: ")) for line in lines), lines
    assert (
        lines[-1].startswith("error: every watched root is gone") and "Traceback" not in watch.err
    )
    assert watch.events[-1]["event"] == "stopped" and "gone" in watch.events[-1]["error"]
    assert _integrity(db) == "ok"


def test_polling_mode_sees_a_new_file(tmp_path: Path, watching: Callable[..., _Watch]) -> None:
    root, db = tmp_path / "share", tmp_path / "watch.db"
    root.mkdir()
    watch = watching(
        root, "--db", f"sqlite:///{db}", "--poll", "--poll-interval", "0.2", "--settle", "0.3"
    )
    assert watch.wait_for(60, event="started")["mode"] == "polling"
    watch.wait_for(event="caught_up")
    (root / "new.jpg").write_bytes(_jpeg(30, (64, 48)))
    watch.wait_for(event="indexed", path=str(root / "new.jpg"))
    assert watch.stop(signal.SIGINT) == 0, watch.err
    assert watch.events[-1]["event"] == "stopped"


def test_a_missing_root_is_one_line_and_help_names_polling(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli("watch", tmp_path / "nowhere", "--db", f"sqlite:///{tmp_path / 'w.db'}")
    assert result.code == 1
    assert result.err.startswith("error: ") and "does not exist" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    helped = run_cli("watch", "--help")
    assert helped.code == 0
    text = " ".join(helped.out.split())
    assert "--poll" in text and "network shares" in text
