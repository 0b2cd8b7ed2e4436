"""``POST /chat``: one turn, answered as JSON or as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ailab.services.files.context import MAX_ATTACHED_FILES
from ailab.services.sessions.service import SESSION_ID_PATTERN

FILE_ID_PATTERN = r"^[0-9a-f-]{36}$"

MAX_MESSAGE_CHARS = 200_000


class ChatBody(BaseModel):
    """The body of ``POST /chat``."""

    # As the schema says: "max_tokens": "64" or 64.5 is refused, not read as 64.
    model_config = ConfigDict(strict=True)

    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    session_id: Annotated[str | None, Field(pattern=SESSION_ID_PATTERN)] = None
    model: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    pipeline: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    stream: bool = False
    max_tokens: Annotated[int | None, Field(ge=1, le=32768)] = None
    temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None
    files: Annotated[
        list[Annotated[str, Field(pattern=FILE_ID_PATTERN)]],
        Field(
            max_length=MAX_ATTACHED_FILES,
            description="ids of the caller's files (`POST /files`): documents reach the model as "
            "context named by file and page, images reach models that can see",
        ),
    ] = []


class TurnUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatReply(BaseModel):
    """A whole turn (``stream: false``). A turn that failed once started has ``status: error``; one
    cancelled through ``POST /runs/{id}/cancel`` has ``cancelled`` and what was produced."""

    response: str
    status: Literal["success", "error", "cancelled"]
    error: str | None
    thought_process: str | None
    session_id: str
    run_id: str
    model: str | None = None
    usage: TurnUsage | None = None


class FinalEvent(BaseModel):
    """The last event of a stream before ``[DONE]``; the others are ``agent_start``, ``delta``,
    ``decision``, ``agent_end`` and ``error``."""

    type: Literal["final"]
    response: str
    session_id: str
    model: str
    thought_process: str | None
    usage: TurnUsage
    ttft_ms: float | None
    tokens_per_second: float | None
