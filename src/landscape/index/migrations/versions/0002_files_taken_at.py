"""files.taken_at: the time a file is sorted and browsed by, with its index.

The capture time when the file has one, else its modification time (UTC), so every file has
a place in "newest first" and a date range is a range of one index on the table every query
starts from (see :mod:`landscape.index.repository`).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FROM_MTIME = {
    "sqlite": "datetime(files.mtime_ns / 1000000000.0, 'unixepoch')",
    "postgresql": "(to_timestamp(files.mtime_ns / 1000000000.0) AT TIME ZONE 'UTC')",
}


def upgrade() -> None:
    """Add the column, fill it from the metadata already indexed, index it with the id."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("taken_at", sa.DateTime(timezone=False), nullable=True))
        batch_op.create_index(batch_op.f("ix_files_taken_at_id"), ["taken_at", "id"], unique=False)
    from_mtime = _FROM_MTIME[op.get_bind().dialect.name]
    op.execute(
        "UPDATE files SET taken_at = coalesce("
        "(SELECT media_metadata.captured_at FROM media_metadata "
        "WHERE media_metadata.file_id = files.id), "
        f"{from_mtime})"
    )


def downgrade() -> None:
    """Drop the index and the column."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_taken_at_id"))
        batch_op.drop_column("taken_at")
