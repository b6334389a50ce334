"""Commands of the indexing service (filled by the indexing and API issues)."""

from __future__ import annotations

import typer

from ._pending import register_pending

_PENDING = {
    "serve": "Serve the REST API and the web GUI.",
    "users": "Manage users and API tokens.",
}


def register(app: typer.Typer) -> None:
    """Add the service commands to the root app."""
    from . import _db, _index, _watch

    app.command("index")(_index.index)
    app.command("search")(_index.search)
    app.command("watch")(_watch.watch)
    app.add_typer(_db.app, name="db")
    for name, doc in _PENDING.items():
        register_pending(app, name, doc)
