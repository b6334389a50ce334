"""Placeholders for commands a later version fills: they say so (exit 1), never pretend."""

from __future__ import annotations

import typer

from landscape.errors import UserError


def register_pending(app: typer.Typer, name: str, doc: str) -> None:
    """Register ``name`` as a command that explains it is not available yet."""

    def command() -> None:
        raise UserError(
            f"`landscape {name}` is not yet available in this version",
            fix="see the project's open issues",
        )

    command.__doc__ = f"{doc} (not yet available)"
    app.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(
        command
    )
