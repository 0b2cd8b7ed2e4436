"""usage_counts (per hour, user, API token and model) and usage_limits (budgets)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "usage_counts",
        sa.Column("bucket", Stamp, nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("token_id", sa.String(36), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "user_id", "token_id", "model"),
    )
    op.create_index("ix_usage_counts_user_bucket", "usage_counts", ["user_id", "bucket"])
    op.create_index("ix_usage_counts_token_bucket", "usage_counts", ["token_id", "bucket"])
    op.create_table(
        "usage_limits",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject_id", sa.String(36), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("max_requests", sa.BigInteger(), nullable=True),
        sa.Column("max_tokens", sa.BigInteger(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject_id", "period"),
    )


def downgrade() -> None:
    op.drop_table("usage_limits")
    op.drop_table("usage_counts")
