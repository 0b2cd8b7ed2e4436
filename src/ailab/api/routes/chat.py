"""``POST /chat``: one turn of a chat session, answered as JSON or as Server-Sent Events.

Refusals before anything is stored answer the usual ``{"detail"}`` 4xx (422 bad input, 404 unknown
model or pipeline or another user's session). A failure of the model once the turn has
started (its user message is stored) answers the seed's shape with ``"status": "error"`` and the error's
HTTP status (502 upstream failure or its refusal of AI-Lab's key, 504 timeout, 429 throttled, 503 with
``Retry-After`` when the embedded model is busy); in a stream it is an ``error`` event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.api.errors import request_id, retry_after_header
from ailab.api.schemas.chat import ChatBody, ChatReply, FinalEvent, TurnUsage
from ailab.api.schemas.common import COMMON_PROBLEMS, event_stream, problems
from ailab.api.sse import DONE, DirectStreamResponse, sse_event
from ailab.errors import AILabError
from ailab.services.auth.accounts import Principal
from ailab.services.chat.service import ChatInput, ChatService, PreparedTurn
from ailab.services.chat.turns import AgentEnd, AgentStart, Decision, Delta, Final, PipelineEvent
from ailab.services.container import Services

router = APIRouter(tags=["chat"], responses=problems(*COMMON_PROBLEMS, 404))
log = logging.getLogger("ailab.chat")
STREAM_DOC = (
    "With `stream: true`: Server-Sent Events, one JSON object per `data:` line (`agent_start`, `delta`, "
    "`decision`, `agent_end`, then `final` or `error`), then `data: [DONE]`."
)


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


def _usage(final: Final) -> TurnUsage:
    usage = final.usage
    return TurnUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def final_payload(final: Final, session_id: str) -> dict[str, Any]:
    """The ``final`` event."""
    event = FinalEvent(
        type="final",
        response=final.response,
        session_id=session_id,
        model=final.model,
        thought_process=final.thought_process,
        usage=_usage(final),
        ttft_ms=final.ttft_ms,
        tokens_per_second=final.tokens_per_second,
    )
    return event.model_dump()


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


@router.post(
    "/chat",
    response_model=ChatReply,
    responses={
        200: event_stream(STREAM_DOC),
        502: {"model": ChatReply, "description": "the model failed once the turn had started"},
        504: {"model": ChatReply, "description": "the model did not answer in time"},
    },
)
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
    reply = ChatReply(
        response=final.response if final is not None else "",
        status="success" if prepared.status == "complete" else "error",
        error=prepared.error,
        thought_process=final.thought_process if final is not None else None,
        session_id=prepared.session_id,
        **({"model": final.model, "usage": _usage(final)} if final is not None else {}),
    )
    return JSONResponse(reply.model_dump(exclude_unset=True), status_code=status, headers=headers)
