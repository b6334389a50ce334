"""``landscape users add|list|remove|passwd|token``: accounts of the web service."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer

from landscape.errors import UserError

from ._options import DbOption, JsonOption
from ._output import console, print_json

app = typer.Typer(
    help="Users of the web service (viewer, analyst, admin) and their API tokens.",
    no_args_is_help=True,
)

RoleOption = Annotated[
    Literal["viewer", "analyst", "admin"],
    typer.Option(
        "--role", help="viewer reads; analyst also uploads and corrects; admin also manages."
    ),
]
PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def _read_password(from_stdin: bool, *, required: bool) -> str | None:
    """The password from stdin, else a prompt (twice) when interactive, else None."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UserError("no password on standard input", fix="pipe one line: the password")
        return line
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    if required:
        raise UserError(
            "no password given and standard input is not a terminal",
            fix="pass --password-stdin and pipe the password",
        )
    return None


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: RoleOption = "viewer",
    db: DbOption = None,
    password_stdin: PasswordStdinOption = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Token-only account (scripts): no GUI login.")
    ] = False,
) -> None:
    """Add a user. Prompts for the password when interactive.

    Example: `echo 's3cret-pass' | landscape users add ana --role analyst --password-stdin`
    """
    from landscape.index.accounts import add_user, audit
    from landscape.index.db import open_index, session_factory

    password = None if no_password else _read_password(password_stdin, required=True)
    with session_factory(open_index(db))() as session:
        add_user(session, name, role, password)
        audit(session, "cli", "user.add", name, {"role": role})
        session.commit()
    console.print(f"added {role} [bold]{name}[/]")


@app.command("passwd")
def passwd(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Set a user's password."""
    from landscape.index.accounts import audit, set_password
    from landscape.index.db import open_index, session_factory

    password = _read_password(password_stdin, required=True)
    assert password is not None
    with session_factory(open_index(db))() as session:
        set_password(session, name, password)
        audit(session, "cli", "user.password", name)
        session.commit()
    console.print(f"password of [bold]{name}[/] changed")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List users with their role, last login and live tokens."""
    from rich.table import Table

    from landscape.index.accounts import list_users
    from landscape.index.db import open_index, session_factory

    with session_factory(open_index(db))() as session:
        users = list_users(session)
    if as_json:
        print_json(users)
        return
    if not users:
        console.print("no users yet: add one with `landscape users add NAME --role admin`")
        return
    table = Table()
    for column in ("name", "role", "tokens", "last login", "created"):
        table.add_column(column)
    for user in users:
        table.add_row(
            user["name"],
            user["role"],
            str(user["tokens"]),
            user["last_login_at"] or "never",
            user["created_at"][:19],
        )
    console.print(table)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
) -> None:
    """Remove a user and their tokens (their corrections stay, under their name)."""
    from landscape.index.accounts import audit, remove_user
    from landscape.index.db import open_index, session_factory

    with session_factory(open_index(db))() as session:
        remove_user(session, name)
        audit(session, "cli", "user.remove", name)
        session.commit()
    console.print(f"removed [bold]{name}[/]")


@app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="Login name.")],
    scope: Annotated[
        Literal["read", "write", "admin"] | None,
        typer.Option("--scope", help="read, write or admin (default: all the role allows)."),
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime: 90m, 12h, 30d, 2w (default 90d).")
    ] = "90d",
    db: DbOption = None,
) -> None:
    """Issue an API token; it is printed once, alone on the last line (only its hash is kept).

    Example: `TOKEN=$(landscape users token ana --expires 30d | tail -1)`
    """
    from landscape.index.accounts import audit, issue_token, parse_duration
    from landscape.index.db import open_index, session_factory

    lifetime = parse_duration(expires)
    with session_factory(open_index(db))() as session:
        text, row = issue_token(session, name, scope, lifetime)
        audit(session, "cli", "token.issue", name, {"scope": row.scope})
        session.commit()
        until = row.expires_at.isoformat(timespec="minutes")
        granted = row.scope
    print(f"token for {name}, scope {granted}, expires {until} (shown once):", file=sys.stderr)
    print(text)
