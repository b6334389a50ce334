"""Alembic environment of the index: run by :mod:`landscape.index.db`, never by an ini file.

The caller passes an open connection in ``config.attributes["connection"]``, so migrations run in
the caller's transaction and with the engine settings of :func:`landscape.index.db.make_engine`.
"""

from __future__ import annotations

from alembic import context

from landscape.index.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through landscape.index.db
    raise RuntimeError("run migrations through landscape.index.db (landscape db upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
