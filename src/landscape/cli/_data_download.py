"""``landscape data download``: fetch a dataset archive, verify it, extract it, name its layout.

The work is in :mod:`landscape.data.download`; this module draws the progress bars and result.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ._options import JsonOption
from ._output import console, err_console, print_json


class _StageBars:
    """One rich bar per stage: bytes with rate and ETA while downloading, files while extracting.

    The total is only known once the server answers, so bars are made on the first report of a
    stage rather than up front.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self._close()
            self.stage = stage
            if stage == "download":
                columns: tuple[Any, ...] = (
                    TextColumn("[bold]downloading"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TextColumn("eta"),
                    TimeRemainingColumn(),
                )
            else:
                columns = (TextColumn("[bold]extracting"), BarColumn(), MofNCompleteColumn())
            self.bar = Progress(*columns, console=err_console)
            self.bar.start()
            self.task = self.bar.add_task(stage, total=total)
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, total=total)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar, self.task = None, None

    def __enter__(self) -> _StageBars:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()


def _print_result(data: dict[str, Any]) -> None:
    how = "resumed and downloaded" if data["resumed"] else "downloaded"
    origin = how if data["downloaded"] else "read"
    console.print(
        f"{origin} {data['bytes'] / 1e6:,.1f} MB (sha256 {data['sha256'][:16]}…), "
        f"extracted {data['extracted']} files into [bold]{escape(data['out'])}[/]"
    )
    if data["layout"] is None:
        console.print(f"[yellow]no dataset recognised:[/] {escape(data['problem'] or '')}")
        return
    console.print(
        f"dataset at [bold]{escape(data['dataset_root'])}[/]: layout {data['layout']}, "
        f"{len(data['classes'])} classes"
    )
    for split, row in data["counts"].items():
        console.print(
            f"  {split:5s} {sum(row.values()):6d}  "
            + "  ".join(f"{escape(c)}={n}" for c, n in row.items())
        )
    console.print(f"next: `landscape data audit {data['dataset_root']}`", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``download`` command to the ``data`` group."""

    @app.command("download")
    def download(
        url: str = typer.Argument(
            ..., help="http(s):// or file:// URL, or a local path, of a zip or tar(.gz) archive."
        ),
        out: Path = typer.Argument(..., help="Folder to extract into (created if missing)."),
        sha256: str = typer.Option(
            None, "--sha256", help="Expected sha256 of the archive (a mismatch deletes a download)."
        ),
        keep_archive: bool = typer.Option(
            False, "--keep-archive", help="Keep the archive in OUT/.downloads after extracting."
        ),
        timeout: float = typer.Option(
            30.0, "--timeout", min=1.0, help="Seconds to wait for the server before giving up."
        ),
        as_json: JsonOption = False,
    ) -> None:
        """Download a dataset archive, verify it, extract it safely and detect its layout.

        Interrupted downloads resume when the same command runs again (HTTP Range). Members
        that would land outside OUT (`..`, absolute paths) and links or devices make the whole
        archive refused before anything is written. Examples:

        - `landscape data download https://example.org/landscapes.zip data/land --sha256 ab12…`
        - `landscape data download ~/Downloads/archive.zip data/intel`
        """
        from landscape.data.download import download_dataset

        with _StageBars(enabled=not as_json) as bars:
            result = download_dataset(
                url,
                out,
                sha256=sha256,
                progress=bars,
                keep_archive=keep_archive,
                timeout=timeout,
            )
        data = result.to_dict()
        if as_json:
            print_json(data)
        else:
            _print_result(data)
