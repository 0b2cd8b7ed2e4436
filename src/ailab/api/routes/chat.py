"""``POST /chat``: one turn of a chat session, answered as JSON or as Server-Sent Events.

Refusals before anything is stored answer the usual ``{"detail"}`` 4xx (422 bad input or unknown
pipeline, 404 unknown model or another user's session). A failure of the model once the turn has
started (its user message is stored) answers the seed's shape with ``"status": "error"`` and the error's
HTTP status (502 upstream failure or its refusal of AI-Lab's key, 504 timeout, 429 throttled, 503 with
``Retry-After`` when the embedded model is busy); in a stream it is an ``error`` event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.api.errors import request_id, retry_after_header
from ailab.api.sse import DONE, DirectStreamResponse, sse_event
from ailab.errors import AILabError
from ailab.services.auth import Principal
from ailab.services.chat import ChatInput, ChatService, PreparedTurn
from ailab.services.container import Services
from ailab.services.sessions import SESSION_ID_PATTERN
from ailab.services.turns import AgentEnd, AgentStart, Decision, Delta, Final, PipelineEvent

router = APIRouter(tags=["chat"])
log = logging.getLogger("ailab.chat")
MAX_MESSAGE_CHARS = 200_000


class ChatBody(BaseModel):
    """The body of ``POST /chat``."""

    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    session_id: Annotated[str | None, Field(pattern=SESSION_ID_PATTERN)] = None
    model: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    pipeline: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    stream: bool = False
    max_tokens: Annotated[int | None, Field(ge=1, le=32768)] = None
    temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None


def event_payload(event: PipelineEvent, session_id: str) -> dict[str, Any]:
    """The public SSE shape of a pipeline event."""
    if isinstance(event, Delta):
        return {"type": "delta", "delta": event.text, "agent": event.agent}
    if isinstance(event, AgentStart):
        return {"type": "agent_start", "agent": event.agent}
    if isinstance(event, Decision):
        return {"type": "decision", "agent": event.agent, "next": event.next}
    if isinstance(event, AgentEnd):
        return {"type": "agent_end", "agent": event.agent}
    return final_payload(event, session_id)


def final_payload(final: Final, session_id: str) -> dict[str, Any]:
    """The ``final`` event."""
    return {
        "type": "final",
        "response": final.response,
        "session_id": session_id,
        "model": final.model,
        "thought_process": final.thought_process,
        "usage": {
            "prompt_tokens": final.usage.prompt_tokens,
            "completion_tokens": final.usage.completion_tokens,
            "total_tokens": final.usage.total_tokens,
        },
        "ttft_ms": final.ttft_ms,
        "tokens_per_second": final.tokens_per_second,
    }


async def _event_stream(chat: ChatService, prepared: PreparedTurn) -> AsyncGenerator[bytes, None]:
    session_id = prepared.session_id
    try:
        async for event in chat.run(prepared):
            yield sse_event(event_payload(event, session_id))
    except AILabError as exc:
        yield sse_event({"type": "error", "error": exc.message, "session_id": session_id})
    except Exception:
        log.exception("chat stream of session %s failed", session_id)
        yield sse_event({"type": "error", "error": "internal server error", "session_id": session_id})
    yield DONE


@router.post("/chat", response_model=None)
async def chat(body: ChatBody, request: Request, user: CurrentUser, services: ServicesDep) -> Response:
    """One turn: JSON ``{"response", "status", "error", "thought_process", "session_id"}`` or SSE."""
    return await answer(body, request, user, services)


async def chat_fast_lane(request: Request, user: Principal) -> Response | None:
    """``POST /chat`` as the fast lane (``api/fastlane.py``) serves it: the same answer as :func:`chat`.

    Declines (None) a body that is not a valid JSON ``ChatBody``, so FastAPI's validation answers it.
    """
    content_type = request.headers.get("content-type")
    if content_type is not None and content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        body = ChatBody.model_validate_json(await request.body())
    except ValidationError:
        return None
    services: Services = request.app.state.services
    return await answer(body, request, user, services)


async def answer(body: ChatBody, request: Request, user: Principal, services: Services) -> Response:
    """Run one turn for ``user`` and answer it (SSE when ``body.stream``)."""
    data = ChatInput(
        message=body.message,
        session_id=body.session_id,
        model=body.model,
        pipeline=body.pipeline,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
    )
    prepared = await services.chat.prepare(user.id, data, request_id(request))
    if body.stream:
        return DirectStreamResponse(_event_stream(services.chat, prepared))
    status = 200
    headers: dict[str, str] = {}
    try:
        async for _ in services.chat.run(prepared):
            pass
    except AILabError as exc:
        status = exc.status
        headers = retry_after_header(exc)  # throttled upstream, or the embedded model's queue is full
    if prepared.status != "complete" and status == 200:
        status = 502
    final = prepared.final
    reply = {
        "response": final.response if final is not None else "",
        "status": "success" if prepared.status == "complete" else "error",
        "error": prepared.error,
        "thought_process": final.thought_process if final is not None else None,
        "session_id": prepared.session_id,
    }
    if final is not None:
        reply["model"] = final.model
        reply["usage"] = final_payload(final, prepared.session_id)["usage"]
    return JSONResponse(reply, status_code=status, headers=headers)
