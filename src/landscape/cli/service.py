"""Commands of the indexing service (filled by the indexing and API issues)."""

from __future__ import annotations

import typer

from ._pending import register_pending

_PENDING: dict[str, str] = {}


def register(app: typer.Typer) -> None:
    """Add the service commands to the root app."""
    from . import _db, _index, _registry, _retrain, _serve, _users, _watch

    app.command("index")(_index.index)
    app.command("search")(_index.search)
    app.command("watch")(_watch.watch)
    app.command("serve")(_serve.serve)
    app.command("retrain")(_retrain.retrain)
    app.add_typer(_db.app, name="db")
    app.add_typer(_users.app, name="users")
    app.add_typer(_registry.app, name="registry")
    for name, doc in _PENDING.items():
        register_pending(app, name, doc)
