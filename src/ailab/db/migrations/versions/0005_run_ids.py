"""messages.run_id and agent_states.run_id: a turn's two messages and its agent steps name their run

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default, no index: a plain ADD COLUMN on both databases (no table rewrite), and the
    # rows are always read by session.
    op.add_column("messages", sa.Column("run_id", sa.String(length=36), nullable=True))
    op.add_column("agent_states", sa.Column("run_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_states") as batch:
        batch.drop_column("run_id")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("run_id")
