"""Commands of the indexing service (filled by the indexing and API issues)."""

from __future__ import annotations

import typer

from ._pending import register_pending

_PENDING = {
    "index": "Scan storage roots and index files with their metadata and landscape context.",
    "watch": "Watch storage roots and index new files as they arrive.",
    "search": "Search the metadata index.",
    "serve": "Serve the REST API and the web GUI.",
    "users": "Manage users and API tokens.",
}


def register(app: typer.Typer) -> None:
    """Add the service commands to the root app."""
    for name, doc in _PENDING.items():
        register_pending(app, name, doc)
