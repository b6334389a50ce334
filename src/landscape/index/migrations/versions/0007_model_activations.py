"""model_activations: the history of which model was made active, when and by whom; and
models.data_fingerprint (the training data's fingerprint from the bundle).

``registry rollback`` returns to the model active before the current one; every activation
(first registration, activate, promote, rollback) is a row. Existing indexes get one row for
their active model.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table, record the current active model, add the fingerprint column."""
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_fingerprint", sa.String(64), nullable=True))
    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.model_id"],
            name=op.f("fk_model_activations_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_activations")),
    )
    op.execute(
        "INSERT INTO model_activations (model_id, activated_at, user_name, reason) "
        "SELECT model_id, registered_at, 'migration', 'existing' FROM models WHERE active"
    )


def downgrade() -> None:
    """Drop the table and the column."""
    op.drop_table("model_activations")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("data_fingerprint")
