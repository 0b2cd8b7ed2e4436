"""``POST /chat``: one turn of a chat session, answered as JSON or as Server-Sent Events.

Refusals before anything is stored answer the usual ``{"detail"}`` 4xx (422 bad input, 404 unknown
model or pipeline or another user's session). A failure of the model once the turn has
started (its user message is stored) answers the seed's shape with ``"status": "error"`` and the error's
HTTP status (502 upstream failure or its refusal of AI-Lab's key, 504 timeout, 429 throttled, 503 with
``Retry-After`` when the embedded model is busy); in a stream it is an ``error`` event. A user at the
limit of concurrent runs, or whose usage budget is spent, gets 429 with ``Retry-After`` before anything
is stored.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.api.errors import request_id, retry_after_header
from ailab.api.schemas.chat import ChatBody, ChatReply, TurnUsage
from ailab.api.schemas.common import COMMON_PROBLEMS, event_stream, problems
from ailab.api.sse import DirectStreamResponse
from ailab.services.auth.accounts import Principal
from ailab.services.chat.service import ChatInput
from ailab.services.chat.turns import Final
from ailab.services.container import Services

router = APIRouter(tags=["chat"], responses=problems(*COMMON_PROBLEMS, 404))
STREAM_DOC = (
    "With `stream: true`: Server-Sent Events, each with an `id:` (a sequence) and one JSON object on its "
    "`data:` line: `run` first (`run_id`, `session_id`), then `agent_start`, `delta`, `decision`, "
    "`agent_end`, and at the end `final`, `error` or `cancelled`; then `data: [DONE]`. Reconnect with "
    "`GET /runs/{id}/events` and `Last-Event-ID`."
)
RUN_ID_HEADER = "X-Run-Id"
REPLY_STATUS = {"complete": "success", "cancelled": "cancelled"}


def _usage(final: Final) -> TurnUsage:
    usage = final.usage
    return TurnUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


@router.post(
    "/chat",
    response_model=ChatReply,
    responses={
        200: event_stream(STREAM_DOC),
        429: {
            "description": "too many runs of this user in progress, or a usage budget spent (`Retry-After`)"
        },
        502: {"model": ChatReply, "description": "the model failed once the turn had started"},
        504: {"model": ChatReply, "description": "the model did not answer in time"},
    },
)
async def chat(body: ChatBody, request: Request, user: CurrentUser, services: ServicesDep) -> Response:
    """One turn, as a run (header ``X-Run-Id``): JSON ``{"response", "status", "error", "thought_process",
    "session_id", "run_id"}`` or SSE."""
    return await answer(body, request, user, services)


async def chat_fast_lane(request: Request, user: Principal, raw: bytes) -> Response | None:
    """``POST /chat`` as the fast lane (``api/fastlane.py``) serves it: the same answer as :func:`chat`.

    Declines (None) a body that is not a valid JSON ``ChatBody``, so FastAPI's validation answers it.
    """
    content_type = request.headers.get("content-type")
    if content_type is not None and content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        body = ChatBody.model_validate_json(raw)
    except ValidationError:
        return None
    services: Services = request.app.state.services
    return await answer(body, request, user, services)


async def answer(body: ChatBody, request: Request, user: Principal, services: Services) -> Response:
    """Start one turn for ``user`` as a run and answer it (SSE when ``body.stream``).

    The run is the server's: a client that hangs up stops reading, not the run (``/runs/{id}``).
    """
    data = ChatInput(
        message=body.message,
        session_id=body.session_id,
        model=body.model,
        pipeline=body.pipeline,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        files=tuple(body.files),
    )
    services.usage.check(user.id, user.token_id, body.model or "")  # spent: 429 before anything is stored
    # A stream's run executes in a task of its own (the response's task ends when its client goes); a
    # JSON answer's in this request's task, which the server lets finish when its client goes.
    run = await services.runs.begin(user.id, data, request_id(request), background=body.stream)
    headers = {RUN_ID_HEADER: run.id}
    if body.stream:
        return DirectStreamResponse(run.events.follow(0), headers=headers)
    await services.runs.execute_here(run)
    prepared = run.prepared
    status = 200
    if run.failure is not None:
        status = run.failure.status
        # Throttled upstream, or the embedded model's queue is full: when to try again.
        headers |= retry_after_header(run.failure)
    elif prepared.status not in ("complete", "cancelled"):
        status = 502
    final = prepared.final
    reply = ChatReply(
        response=final.response if final is not None else prepared.answer,
        status=REPLY_STATUS.get(prepared.status, "error"),
        error=prepared.error,
        thought_process=final.thought_process if final is not None else None,
        session_id=prepared.session_id,
        run_id=run.id,
        **({"model": final.model, "usage": _usage(final)} if final is not None else {}),
    )
    body_bytes = reply.__pydantic_serializer__.to_json(reply, exclude_unset=True)  # as FastAPI would, at once
    return Response(body_bytes, status_code=status, headers=headers, media_type="application/json")
