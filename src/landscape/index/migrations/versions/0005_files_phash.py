"""files.phash: a 64-bit perceptual hash of what the file shows, for near-duplicate search.

A still image's pHash, a video's taken from its middle sampled frame: a resized or re-encoded
copy hashes within a few bits, where its content hash differs entirely. Signed (a BIGINT);
None for files indexed before, files that are not pictures, and files that did not decode.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable phash column."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phash", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop the phash column."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("phash")
