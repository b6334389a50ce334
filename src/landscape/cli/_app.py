"""The root typer application and its command groups."""

from __future__ import annotations

import typer

from landscape import __version__

from . import data as _data
from . import models as _models
from . import service as _service
from . import workbench as _workbench

app = typer.Typer(
    name="landscape",
    help=(
        "Recognise the landscape context of photos and videos, train and compare models, "
        "and index a media store.\n\n"
        "Start with `landscape demo`, or `landscape data synth demo-data --per-class 60`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"landscape {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of errors (also LANDSCAPE_DEBUG=1)."
    ),
) -> None:
    """landscape: landscape recognition workbench and media indexing service."""


app.add_typer(_data.app, name="data")
app.add_typer(_models.app, name="models")
_workbench.register(app)
_service.register(app)
