"""performance_metrics.weight: how many requests one stored sample stands for

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: a plain ADD COLUMN on both databases (PostgreSQL does not rewrite the table),
    # and every sample written before stands for itself alone.
    op.add_column("performance_metrics", sa.Column("weight", sa.Float(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("performance_metrics") as batch:
        batch.drop_column("weight")
