"""``landscape db upgrade|current|check``: the index database's schema (Alembic migrations)."""

from __future__ import annotations

import typer

from landscape.errors import UserError

from ._options import DbOption, JsonOption
from ._output import console, print_json

app = typer.Typer(
    help="The index database: create or migrate its schema, show and check its revision.",
    no_args_is_help=True,
)


@app.command("upgrade")
def upgrade(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Create the schema or migrate it to this version's newest revision (safe to repeat).

    Example: `landscape db upgrade --db postgresql+psycopg://me@127.0.0.1:5432/archive`
    """
    from landscape.index.db import current_revision, make_engine
    from landscape.index.db import upgrade as run_upgrade

    engine = make_engine(db)
    before = current_revision(engine)
    after = run_upgrade(engine)
    if as_json:
        print_json({"url": engine.url.render_as_string(), "from": before, "to": after})
        return
    moved = "already at" if before == after else f"{before or 'empty'} →"
    console.print(f"{engine.url.render_as_string()}: {moved} revision [bold]{after}[/]")


@app.command("current")
def current(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Print the database's schema revision and this version's newest one."""
    from landscape.index.db import current_revision, head_revision, make_engine

    engine = make_engine(db)
    revision = current_revision(engine)
    if as_json:
        print_json({"current": revision, "head": head_revision()})
        return
    console.print(f"current {revision or '(no schema)'}; newest {head_revision()}")


@app.command("check")
def check(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Exit 0 when the schema is at the newest revision and matches the models, else 1."""
    from landscape.index.db import make_engine, schema_status

    status = schema_status(make_engine(db))
    if as_json:
        print_json(
            {
                "ok": status.ok,
                "current": status.current,
                "head": status.head,
                "differences": list(status.differences),
            }
        )
    elif status.ok:
        console.print(f"schema ok (revision {status.head})")
    if not status.ok:
        if status.current != status.head:
            problem = f"schema at {status.current or 'nothing'}, newest is {status.head}"
        else:
            problem = f"{len(status.differences)} difference(s) from the models: "
            problem += "; ".join(status.differences)[:300]
        raise UserError(problem, fix="run `landscape db upgrade`")
