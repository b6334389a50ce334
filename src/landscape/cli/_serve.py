"""``landscape serve``: the REST API and the web GUI over an index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._options import DbOption, IndexModelOption

__all__ = ["serve"]


def serve(
    db: DbOption = None,
    model: IndexModelOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    roots: Annotated[
        list[Path] | None,
        typer.Option(
            "--root", help="A folder whose files may be served (repeat; default: the index's)."
        ),
    ] = None,
    no_docs: Annotated[
        bool, typer.Option("--no-docs", help="Do not serve the OpenAPI docs at /docs.")
    ] = False,
) -> None:
    """Serve the REST API (/api/v1, docs at /docs) and the web GUI (gallery at /).

    Settings also come from the environment (LANDSCAPE_DB, LANDSCAPE_HOME, LANDSCAPE_MODEL,
    LANDSCAPE_MAX_UPLOAD_MB, LANDSCAPE_SECRET, LANDSCAPE_COOKIE_SECURE...). Add users first:
    `landscape users add NAME --role analyst`.

    Example: `landscape serve --db postgresql+psycopg://me@db/archive --host 0.0.0.0
    --root /mnt/archive`
    """
    import uvicorn

    from landscape.api.settings import ServiceSettings

    overrides: dict[str, Any] = {"host": host, "port": port, "docs": not no_docs}
    if db is not None:
        overrides["db"] = db
    if model is not None:
        overrides["model"] = model
    if roots:
        overrides["roots"] = tuple(r.resolve() for r in roots)
    settings = ServiceSettings(**overrides)
    app = build_site(settings)
    typer.echo(f"landscape: serving http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


def build_site(settings: Any) -> Any:
    """The GUI with the API under it, or the API alone where the GUI is not installed."""
    import importlib

    from landscape.api import create_app

    create_site = getattr(importlib.import_module("landscape.web"), "create_site", None)
    return create_site(settings) if create_site is not None else create_app(settings)
