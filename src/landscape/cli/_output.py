"""Shared console helpers: rich consoles, progress bars with rate and ETA, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (paths and other objects via ``str``)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_timeline(name: str, timeline: dict[str, Any], indent: str = "") -> None:
    """A video's timeline as ``landscape predict`` shows it: the dominant label, then one line
    per segment (``00:00–00:04  coast 0.93``); ``timeline`` is ``Timeline.to_dict()``."""
    from landscape.inference.video import format_time

    share = f"{timeline['dominant_share']:.0%} of {format_time(timeline['duration'])}"
    console.print(
        f"{indent}{name}: [bold]{timeline['dominant']}[/] (dominant, {share})", soft_wrap=True
    )
    for seg in timeline["segments"]:
        flag = " [yellow](unknown)[/]" if seg["is_unknown"] else ""
        console.print(
            f"{indent}  {format_time(seg['start'])}–{format_time(seg['end'])}  "
            f"{seg['label']} {seg['confidence']:.2f}{flag}"
        )
    if timeline.get("broken"):
        console.print(
            f"{indent}  [yellow]the file breaks off at {format_time(timeline['duration'])}"
            f"[/] ({timeline['broken']}): the timeline covers what decoded",
            soft_wrap=True,
        )


@contextmanager
def progress_bar(
    description: str, total: int | None, *, enabled: bool = True, unit: str = "it"
) -> Iterator[Any]:
    """A rich progress bar on stderr showing count, rate (``unit``/s) and ETA; yields
    ``advance(n=1, note=None)``, where a ``note`` (e.g. "3 failed") stays shown until replaced."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("[yellow]{task.fields[note]}"),
    )
    with Progress(*columns, console=err_console, disable=not enabled, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="", note="")

        def advance(n: int = 1, note: str | None = None) -> None:
            bar.advance(task, n)
            if note is not None:
                bar.update(task, note=note)
            speed = bar.tasks[task].speed
            if speed:
                bar.update(task, rate=f"{speed:,.1f} {unit}/s")

        yield advance
