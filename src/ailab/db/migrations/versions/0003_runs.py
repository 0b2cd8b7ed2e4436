"""runs: /chat turns as server-owned tasks (status, executing process and its lease, last event id)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column(
            "session_id",
            sa.String(length=128),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("owner_id", sa.String(length=36), sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255)),
        sa.Column("error", sa.Text()),
        sa.Column("instance_id", sa.String(length=160), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_runs_session_created", "runs", ["session_id", "created_at"])
    running = sa.text("status = 'running'")
    op.create_index("ix_runs_running", "runs", ["status"], sqlite_where=running, postgresql_where=running)


def downgrade() -> None:
    op.drop_index("ix_runs_running", table_name="runs")
    op.drop_index("ix_runs_session_created", table_name="runs")
    op.drop_table("runs")
