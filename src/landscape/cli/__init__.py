"""The ``landscape`` command line: a typer app with one module per command group.

Heavy libraries (torch, timm, lightning) are imported inside the commands that need them so that
``landscape --help`` answers in well under a second.
"""

from __future__ import annotations

import sys

import typer

try:  # typer ≥ 0.24 vendors click; older releases use click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # type: ignore[assignment]

from landscape.errors import UserError

from ._app import app

__all__ = ["app", "main"]


def _wants_debug(argv: list[str]) -> bool:
    from pydantic import ValidationError

    from landscape.settings import get_settings

    if "--debug" in argv:
        return True
    try:
        return get_settings().debug
    except ValidationError:  # a malformed LANDSCAPE_DEBUG must not hide the error being shown
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 user error, 2 usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="landscape", standalone_mode=False)
    except UserError as exc:
        if _wants_debug(args):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except typer.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


def _entry() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
