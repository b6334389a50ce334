"""Commands of the indexing service (filled by the indexing and API issues)."""

from __future__ import annotations

from collections.abc import Callable

import typer

from landscape.errors import UserError

_PENDING = {
    "index": "Scan storage roots and index files with their metadata and landscape context.",
    "watch": "Watch storage roots and index new files as they arrive.",
    "search": "Search the metadata index.",
    "serve": "Serve the REST API and the web GUI.",
    "users": "Manage users and API tokens.",
}


def _not_yet(name: str) -> Callable[[], None]:
    def command() -> None:
        raise UserError(
            f"`landscape {name}` is not yet available in this version",
            fix="see the project's open issues",
        )

    command.__doc__ = f"{_PENDING[name]} (not yet available)"
    return command


def register(app: typer.Typer) -> None:
    """Add the service commands to the root app."""
    for name in _PENDING:
        app.command(
            name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
        )(_not_yet(name))
