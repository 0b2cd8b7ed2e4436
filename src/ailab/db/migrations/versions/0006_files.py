"""files and file_chunks, with each database's own full-text index; messages.files

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)

# SQLite: an external-content FTS5 table over file_chunks.text, kept in step by triggers (chunks are
# only ever inserted and deleted). Porter stemming, as PostgreSQL's 'english' configuration does.
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE file_chunks_fts USING fts5("
    "text, content='file_chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER file_chunks_ai AFTER INSERT ON file_chunks BEGIN "
    "INSERT INTO file_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER file_chunks_ad AFTER DELETE ON file_chunks BEGIN "
    "INSERT INTO file_chunks_fts(file_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
]
POSTGRES_FTS = [
    "ALTER TABLE file_chunks ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX ix_file_chunks_tsv ON file_chunks USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("chars", sa.Integer(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.UniqueConstraint("owner_id", "sha256", name="uq_files_owner_sha256"),
    )
    op.create_index("ix_files_owner_created", "files", ["owner_id", "created_at", "id"])
    op.create_table(
        "file_chunks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("file_id", sa.String(36), sa.ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(255), nullable=True),
    )
    op.create_index("ix_file_chunks_file_idx", "file_chunks", ["file_id", "idx"])
    for statement in SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS:
        op.execute(statement)
    op.add_column("messages", sa.Column("files", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("files")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE file_chunks_fts")  # its triggers go with file_chunks
    op.drop_table("file_chunks")
    op.drop_table("files")
