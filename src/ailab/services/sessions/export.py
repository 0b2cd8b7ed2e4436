"""The JSON export of a session (``GET /sessions/{id}/export``), as a validated model for its import.

An import is untrusted input: every field has its type and its bound (those of the database columns),
so a wrong one is a 422 naming it, never a 500 from the database, and nothing is stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

EXPORT_FORMAT = "ailab.session.v1"


def _json_number(value: Any) -> Any:
    """A JSON number only: pydantic would take ``true`` or ``"3"`` for a number, the schema does not."""
    if isinstance(value, bool | str):
        raise ValueError("must be a number")  # pydantic reports a ValueError as a 422
    return value


JsonNumber = BeforeValidator(_json_number)
Count = Annotated[int, Field(ge=0, le=2**31 - 1), JsonNumber]  # an INTEGER column
Millis = Annotated[float, Field(ge=0, allow_inf_nan=False), JsonNumber]


Text16 = Annotated[str, Field(max_length=16)]
Text32 = Annotated[str, Field(max_length=32)]
Text64 = Annotated[str, Field(max_length=64)]
Text255 = Annotated[str, Field(max_length=255)]
Text256 = Annotated[str, Field(max_length=256)]


class _Exported(BaseModel):
    model_config = ConfigDict(extra="ignore")  # an export carries ids and seqs the import does not take


class ExportedMessage(_Exported):
    """One message of an export."""

    role: Annotated[str, Field(min_length=1, max_length=32)]
    content: str
    thought_process: str | None = None
    model: Text255 | None = None
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    status: Text16 | None = None
    created_at: dt.datetime | None = None
    timestamp: dt.datetime | None = None  # v2's name for it

    def row(self) -> dict[str, Any]:
        """The message's columns."""
        row: dict[str, Any] = {
            "role": self.role,
            "content": self.content,
            "thought_process": self.thought_process,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "status": self.status or "complete",
        }
        created = self.created_at or self.timestamp
        if created is not None:
            row["created_at"] = created
        return row


class ExportedAgentState(_Exported):
    """One agent step of an export."""

    step: Count = 0
    agent: Annotated[str, Field(min_length=1, max_length=64)] = "unknown"
    status: Text32 | None = None
    decision: Text64 | None = None
    routed_by: Literal["agent", "default", "fixed"] | None = None
    input_summary: str | None = None
    output: str | None = None
    thought_process: str | None = None
    model: Text255 | None = None
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    ttft_ms: Millis | None = None
    duration_ms: Millis | None = None
    request_id: Text64 | None = None
    created_at: dt.datetime | None = None

    def row(self) -> dict[str, Any]:
        """The step's columns (those it has)."""
        return self.model_dump(exclude_none=True)


class ExportedSession(_Exported):
    """The session's own fields."""

    title: Text256 | None = None


class SessionExport(_Exported):
    """A whole export: the session, its messages in order, its agent steps."""

    format: Literal["ailab.session.v1"]
    session: ExportedSession = Field(default_factory=ExportedSession)
    messages: list[ExportedMessage]
    agent_states: list[ExportedAgentState] = Field(default_factory=list)
