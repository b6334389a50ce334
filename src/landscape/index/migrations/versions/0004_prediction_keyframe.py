"""predictions.keyframe: a video segment's most typical frame, a small JPEG in the data dir.

The path is relative to the index's keyframe folder (see :mod:`landscape.index.keyframes`),
so the data dir can move with the database. None for still images and rows made before.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable keyframe column."""
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyframe", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the keyframe column."""
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("keyframe")
