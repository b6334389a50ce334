"""``landscape watch``: follow storage roots and index what changes (signals, output, options;
the watching itself is :class:`landscape.index.watcher.Watcher`)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from ._options import (
    AllowEmptyOption,
    BackendOption,
    DbOption,
    EveryOption,
    FileTimeoutOption,
    MinSegmentOption,
    WorkersOption,
)
from ._output import err_console

__all__ = ["watch"]

# How often the status comes out when nobody sees a live line (a log, --json).
_STATUS_EVERY = 60.0


def watch(
    roots: Annotated[list[Path], typer.Argument(help="Storage folders to watch.")],
    db: DbOption = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="Model bundle (default: the database's active model, else LANDSCAPE_MODEL).",
        ),
    ] = None,
    backend: BackendOption = "torch",
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            min=0,
            help="Seconds a file's size and mtime must stay unchanged before it is read "
            "(a copy in progress is never read half-written).",
        ),
    ] = 2.0,
    poll: Annotated[
        bool,
        typer.Option(
            "--poll",
            help="Poll the folders instead of waiting for kernel events (inotify): for "
            "network shares (NFS, SMB/CIFS), where files written by other machines raise "
            "no event.",
        ),
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", min=0.1, help="With --poll: seconds between two scans."),
    ] = 5.0,
    workers: WorkersOption = 2,
    timeout: FileTimeoutOption = 60.0,
    every: EveryOption = 1.0,
    min_segment: MinSegmentOption = 2.0,
    allow_empty: AllowEmptyOption = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print an event log for supervisors: one JSON object per line on stdout "
            '({"event": "started" | "caught_up" | "indexed" | "missing" | "failed" | '
            '"root_gone" | "root_back" | "status" | "stopped", ...}).',
        ),
    ] = False,
) -> None:
    """Watch storage roots and index new, changed, moved and deleted files as they happen.

    On start it catches up with what changed while it was not running (the incremental
    `landscape index` scan), then follows file system events: a file is read once its size and
    mtime have been still for `--settle` seconds, a moved file keeps its history, a deleted one
    is marked missing. Use `--poll` on network shares (NFS, SMB), where inotify sees nothing
    that other machines write. SIGINT/SIGTERM finish the batch in flight and exit 0. A root
    that disappears is reported and watched again when it comes back; when every root is gone
    the command exits 1 (let the supervisor restart it).

    Examples:

    `landscape watch /mnt/archive --model runs/demo/bundle`

    `landscape watch /mnt/nas/photos --poll --poll-interval 30 --json`
    """
    from landscape.index.db import open_index, session_factory
    from landscape.index.pipeline import IndexOptions
    from landscape.index.scanner import check_root
    from landscape.index.watcher import Watcher

    from ._index import _predictor

    for root in roots:
        check_root(root)  # a missing root is one line before the model is loaded
    engine = open_index(db)
    with session_factory(engine)() as session:
        predictor = _predictor(session, model, backend)
    live = not as_json and err_console.is_terminal
    watcher = Watcher(
        engine,
        roots,
        predictor=predictor,
        options=IndexOptions(
            workers=workers,
            timeout=timeout,
            every=every,
            min_segment=min_segment,
            allow_empty=allow_empty,
        ),
        settle=settle,
        poll=poll,
        poll_interval=poll_interval,
        report=_json_line if as_json else _human_line,
        status_every=None if live else _STATUS_EVERY,
    )
    stop = threading.Event()
    with _stop_on_signals(stop), _live_status(watcher, enabled=live):
        watcher.run(stop)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask the watcher to stop after its batch in flight; a second SIGINT
    interrupts at once (exit 130)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _live_status(watcher: Any, *, enabled: bool) -> Iterator[None]:
    """The status line at the bottom of a terminal, below the events."""
    if not enabled:
        yield
        return
    from rich.live import Live
    from rich.text import Text

    class _Line:
        def __rich__(self) -> Text:
            return Text(f"watching · {watcher.stats.line()}", style="dim")

    with Live(_Line(), console=err_console, refresh_per_second=2, transient=True):
        yield


def _json_line(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()
    if event["event"] == "root_gone":  # also a warning where people look
        print(f"warning: {event['root']}: {event['reason']}", file=sys.stderr, flush=True)


def _human_line(event: dict[str, Any]) -> None:
    """One line per event on stderr (with the live status line when it is a terminal)."""
    kind = event["event"]
    text: str | None
    if kind == "started":
        model = event["model_id"] or "no model: metadata only"
        text = (
            f"watching {', '.join(event['roots'])} ({event['mode']}, settle "
            f"{event['settle']:g} s, {model}); catching up first"
        )
    elif kind == "caught_up":
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(event["outcomes"].items()) if v)
        text = f"caught up {', '.join(event['roots'])}: {outcomes or 'nothing to do'}"
    elif kind == "indexed":
        label = f"  [bold]{event['label']}[/] {event['confidence']:.2f}" if event["label"] else ""
        moved = f" (moved from {event['from']})" if event.get("from") else ""
        text = f"{event['outcome']}: {event['path']}{label}{moved}"
    elif kind == "missing":
        text = f"missing: {event['path']}"
    elif kind == "failed":
        text = f"[yellow]failed[/]: {event.get('path') or event.get('root')}: {event['error']}"
    elif kind == "root_gone":
        text = f"[yellow]warning[/]: {event['root']}: {event['reason']}"
    elif kind == "root_back":
        text = f"back: {event['root']}"
    elif kind == "rescan":
        text = f"rescanning: {event['reason']}"
    elif kind == "status":
        text = (
            f"status: {event['seen']} seen, {event['indexed']} indexed, {event['failed']} "
            f"failed, {event['missing']} missing, {event['queued']} queued"
        )
    elif kind == "stopped":
        # An error stop is followed by the one-line error itself.
        text = None if event.get("error") else f"stopped ({event['indexed']} indexed)"
    else:
        text = f"{kind}: {event}"
    if text is not None:
        err_console.print(text, soft_wrap=True, highlight=False)
