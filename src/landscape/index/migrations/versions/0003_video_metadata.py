"""media_metadata: the facts of a video (duration, frame rate, codecs, rotation, bit rate).

Videos share the table with images: the columns of a still image stay None for a video and
these stay None for an image (see :mod:`landscape.index.extract_video`). Nullable, so the rows
already indexed need no value.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the video columns, all nullable."""
    with op.batch_alter_table("media_metadata", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duration", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("fps", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("fps_real", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("variable_frame_rate", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("video_codec", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("video_profile", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("rotation", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("bit_rate", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("audio_codec", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("frame_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop the video columns."""
    with op.batch_alter_table("media_metadata", schema=None) as batch_op:
        batch_op.drop_column("frame_count")
        batch_op.drop_column("audio_codec")
        batch_op.drop_column("bit_rate")
        batch_op.drop_column("rotation")
        batch_op.drop_column("video_profile")
        batch_op.drop_column("video_codec")
        batch_op.drop_column("variable_frame_rate")
        batch_op.drop_column("fps_real")
        batch_op.drop_column("fps")
        batch_op.drop_column("duration")
