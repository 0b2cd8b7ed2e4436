"""``/runs``: a ``/chat`` turn executed as a task of the server."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ailab.api.schemas.common import Out, Timestamp

RunStatus = Literal["running", "done", "cancelled", "failed"]


class RunOut(Out):
    """A run: its status, and when it ended."""

    id: str
    session_id: str
    status: RunStatus
    pipeline: str
    model: str | None
    error: str | None = Field(description="why it failed or was stopped")
    last_event_id: int = Field(description="the id of its last event, once it has ended")
    created_at: Timestamp
    finished_at: Timestamp | None


class RunList(BaseModel):
    items: list[RunOut]
