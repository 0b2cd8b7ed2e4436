"""``/sessions`` and ``/conversation``: sessions, messages, agent steps, export."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ailab.api.schemas.common import Out, Timestamp

ROLE_PATTERN = r"^[A-Za-z][A-Za-z0-9_ -]{0,31}$"


class SessionCreate(BaseModel):
    title: str = Field("", max_length=256)


class SessionUpdate(BaseModel):
    title: str = Field(max_length=256)


class MessageCreate(BaseModel):
    role: str = Field(pattern=ROLE_PATTERN, description="user, assistant, system, or a legacy agent role")
    content: str = Field(max_length=1_000_000)
    thought_process: str | None = None


class SessionOut(Out):
    """A chat session."""

    id: str
    title: str
    message_count: int = Field(validation_alias="next_seq")
    created_at: Timestamp
    updated_at: Timestamp


class SessionList(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None = Field(description="pass it back as `cursor` for the next page")


class AttachedFile(BaseModel):
    """A file a message came with (``GET /files/{id}`` has the rest)."""

    id: str
    filename: str
    content_type: str


class MessageOut(Out):
    """A stored message; ``status`` is ``complete``, or ``error``/``cancelled`` for a turn that failed."""

    id: int
    session_id: str
    seq: int
    role: str
    content: str
    thought_process: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    status: str
    created_at: Timestamp
    run_id: str | None = Field(description="the `/chat` run of this turn (its question and its answer)")
    files: list[AttachedFile] | None = Field(None, description="the files a user message came with")


class MessageList(BaseModel):
    items: list[MessageOut]
    next_after: int | None = Field(description="pass it back as `after` for the next page")


class AgentStateOut(Out):
    """One agent step of a pipeline run."""

    step: int
    agent: str
    status: str | None
    decision: str | None
    routed_by: str | None = Field(description="agent (it chose), default (its fallback), fixed (one route)")
    input_summary: str | None
    output: str | None
    thought_process: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: float | None
    duration_ms: float | None
    request_id: str | None
    run_id: str | None = Field(description="the `/chat` run whose answer this step led to")
    created_at: Timestamp


class AgentStateList(BaseModel):
    items: list[AgentStateOut]


class ExportedSessionOut(Out):
    id: str
    title: str
    created_at: Timestamp
    updated_at: Timestamp


class SessionDocument(Out):
    """A session as ``GET /sessions/{id}/export?format=json`` writes it (and the import reads)."""

    format: Literal["ailab.session.v1"]
    session: ExportedSessionOut
    messages: list[MessageOut]
    agent_states: list[AgentStateOut]


class ConversationEntry(Out):
    """A message in the seed's shape."""

    role: str
    content: str
    thought_process: str | None
    timestamp: Timestamp = Field(validation_alias="created_at")


class Conversation(BaseModel):
    session_id: str
    history: list[ConversationEntry]
