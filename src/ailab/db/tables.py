"""The storage model, as SQLAlchemy 2.0 typed tables.

One schema serves SQLite and PostgreSQL. Timestamps are stored in UTC (:class:`UTCDateTime`). Messages are
ordered by ``seq``, allocated from ``sessions.next_seq`` inside the appending transaction: that update
takes the session row's write lock, so concurrent appends to one session are serialised and never share
or skip a number, while appends to different sessions proceed in parallel. Deleting a session cascades to
its messages and agent states. Secrets (``api_keys.ciphertext``, ``users.password_hash``,
``api_tokens.token_hash``) are never stored in plaintext.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")  # admin | user
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise it in lists
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # "api": made by its owner, lives until revoked; "browser": a signed-in browser's (its cookie), ends
    # at sign-out or at expires_at, and is not listed among the API tokens.
    kind: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class ChatSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(String(256), default="")
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    next_seq: Mapped[int] = mapped_column(Integer, default=0)  # messages appended so far
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("session_id", "seq", name="uq_messages_session_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)
    thought_process: Mapped[str | None] = mapped_column(Text, default=None)
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    # complete | cut_off | cancelled | error
    status: Mapped[str] = mapped_column(String(16), default="complete")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    run_id: Mapped[str | None] = mapped_column(String(36), default=None)  # the /chat run it belongs to
    # The files a user message came with: [{"id", "filename", "content_type"}] (None: none).
    files: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), default=None)


class Run(Base):
    """A ``/chat`` turn as a task of the server: it outlives the request that started it.

    ``instance_id`` names the process that executes it (host, pid, process start); ``lease_until`` is
    renewed by that process while it lives, so another one can tell a run whose server died.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_session_created", "session_id", "created_at"),
        # Only the running ones (what the sweep looks for): a run leaves the index when it ends.
        Index(
            "ix_runs_running",
            "status",
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        {"sqlite_with_rowid": False},  # its text key is the table's own order: one b-tree less to write
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | cancelled | failed
    pipeline: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    instance_id: Mapped[str] = mapped_column(String(160))
    lease_until: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)  # the id of its last SSE event
    answer_id: Mapped[int | None] = mapped_column(BigInteger, default=None)  # messages.id of the answer
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AgentState(Base):
    __tablename__ = "agent_states"
    __table_args__ = (Index("ix_agent_states_session_step", "session_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    step: Mapped[int] = mapped_column(Integer, default=0)
    agent: Mapped[str] = mapped_column(String(64))
    input_summary: Mapped[str | None] = mapped_column(Text, default=None)
    output: Mapped[str | None] = mapped_column(Text, default=None)
    thought_process: Mapped[str | None] = mapped_column(Text, default=None)
    decision: Mapped[str | None] = mapped_column(String(64), default=None)
    routed_by: Mapped[str | None] = mapped_column(String(16), default=None)  # agent, default, fixed
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    status: Mapped[str] = mapped_column(String(32), default="done")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    run_id: Mapped[str | None] = mapped_column(String(36), default=None)  # the /chat run of this step


class StoredFile(Base):
    """An upload: its bytes live in ``<data dir>/uploads/<id>``, its text in ``file_chunks``.

    The same bytes are stored once per owner (``sha256``). ``status``: ``processing`` while its text is
    read, ``ready``, or ``failed`` (``error`` says why; its bytes and chunks are gone by then).
    """

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("owner_id", "sha256", name="uq_files_owner_sha256"),
        Index("ix_files_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    filename: Mapped[str] = mapped_column(String(255))  # as uploaded: metadata, never a path
    content_type: Mapped[str] = mapped_column(String(128))  # from the bytes, not from the client
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="processing")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    pages: Mapped[int | None] = mapped_column(Integer, default=None)
    chars: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FileChunk(Base):
    """A piece of a file's text with its page. Indexed for full-text search by the database itself:
    an FTS5 table kept by triggers on SQLite, a generated ``tsvector`` column with a GIN index on
    PostgreSQL (both made by migration 0006, not declared here)."""

    __tablename__ = "file_chunks"
    __table_args__ = (Index("ix_file_chunks_file_idx", "file_id", "idx"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer, default=None)
    text: Mapped[str] = mapped_column(Text)
    # With AILAB_FILES_EMBEDDING_MODEL: the text's vector (float32, unit length) and the model that made it.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    embedding_model: Mapped[str | None] = mapped_column(String(255), default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"

    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)  # versioned ("v1:" + Fernet token)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # non-secret: endpoint, deployment
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_tested_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_test_result: Mapped[str | None] = mapped_column(String(32), default=None)


class PerformanceMetric(Base):
    __tablename__ = "performance_metrics"
    __table_args__ = (Index("ix_performance_metrics_kind_time", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # http | llm | function | legacy
    name: Mapped[str] = mapped_column(String(255))  # route template, model id or function name
    value: Mapped[float | None] = mapped_column(Float, default=None)  # duration in ms
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    # How many observations this row stands for: 1, or more for a success kept by sampling under load
    # (services/monitoring/history.py); counts are sums of weights and percentiles are weighted.
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    session_id: Mapped[str | None] = mapped_column(String(128), default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AgentDefinition(Base):
    __tablename__ = "agent_definitions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Pipeline(Base):
    __tablename__ = "pipelines"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class BenchmarkRun(Base):
    __tablename__ = "benchmark_runs"
    __table_args__ = (Index("ix_benchmark_runs_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | error
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    results: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class ImportedItem(Base):
    """Fingerprints of legacy rows already imported, so a re-run adds nothing."""

    __tablename__ = "imported_items"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UsageCount(Base):
    """Generations, prompt and completion tokens per hour, user, API token and model.

    Counted in memory by each process and added here in batches (``services/usage/recorder.py``), never
    on a request's path. ``''`` stands for no user (the CLI's benchmark) and no API token (an access token
    or a browser session): key columns cannot be NULL, or two rows for the same key could coexist.
    No foreign keys: the usage of a deleted user or token stays accounted for.
    """

    __tablename__ = "usage_counts"
    __table_args__ = (
        Index("ix_usage_counts_user_bucket", "user_id", "bucket"),
        Index("ix_usage_counts_token_bucket", "token_id", "bucket"),
    )

    bucket: Mapped[dt.datetime] = mapped_column(primary_key=True)  # the hour's start, UTC
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)  # provider/model
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageLimit(Base):
    """A budget an admin set: at most ``max_requests`` generations and/or ``max_tokens`` tokens (prompt
    and completion) per ``period`` (hour, day or month, in UTC) for a user or an API token."""

    __tablename__ = "usage_limits"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # user | token
    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # users.id or api_tokens.id
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # hour | day | month
    max_requests: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
