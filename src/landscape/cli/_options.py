"""Options several commands share, declared once (``Annotated`` aliases).

One meaning per short flag across the whole CLI: ``-d`` data, ``-o`` out, ``-c`` config,
``-b`` backbone, ``-w`` weights, ``-p`` policy, ``-e`` epochs, ``-j`` jobs, ``-s`` split,
``-n`` images per class (``data synth``, ``demo``), ``-l`` label and ``-m`` model (``search``,
``index``), ``-h`` help. New commands (index, serve, …) take
their common options from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from landscape.config import Backend

__all__ = [
    "BackendOption",
    "BatchSizeOption",
    "ConfigFileOption",
    "DataOption",
    "DbOption",
    "DeviceOption",
    "JsonOption",
    "NoProgressOption",
    "SeedOption",
    "out_option",
]

_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?|mps")


def _check_device(value: str | None) -> str | None:
    if value is not None and not _DEVICE.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a device: use cpu, cuda, cuda:N or mps")
    return value


def out_option(help: str) -> Any:
    """``--out/-o`` with a command's own description of what it writes there."""
    return typer.Option("--out", "-o", help=help)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")
]
NoProgressOption = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed.")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")]
BackendOption = Annotated[
    Backend,
    typer.Option(
        "--backend",
        help="Inference backend: torch, or onnx / onnx-int8 after `landscape export`.",
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option("--device", callback=_check_device, help="cpu | cuda | cuda:N | mps."),
]
DataOption = Annotated[
    Path | None,
    typer.Option("--data", "-d", help="Dataset folder (class folders or splits) or CSV manifest."),
]
ConfigFileOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (TrainConfig keys); flags override keys."),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Index database URL: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB "
        "(default: LANDSCAPE_DB, else landscape.db in LANDSCAPE_HOME or the user data dir).",
    ),
]
EveryOption = Annotated[
    float, typer.Option("--every", min=0.05, help="Videos: seconds between sampled frames.")
]
MinSegmentOption = Annotated[
    float,
    typer.Option(
        "--min-segment", min=0, help="Videos: shorter segments join their neighbours (s)."
    ),
]
IndexModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help="Model bundle (default: the database's active model, else LANDSCAPE_MODEL; "
        "the first one given becomes active).",
    ),
]
WorkersOption = Annotated[
    int, typer.Option("--workers", min=0, help="Extract/decode worker processes.")
]
FileTimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=1,
        help="Seconds one file may take to read (videos: plus 2 s per second of footage).",
    ),
]
AllowEmptyOption = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        help="Accept a root that is empty although the index has files there (its files "
        "become missing; by default such a root is taken for an unmounted share).",
    ),
]
