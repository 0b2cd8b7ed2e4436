"""The OpenAI-compatible routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/embeddings``.

Thin on purpose (this is the hot path): the body is read as bytes and handed to the gateway service,
which validates it against :class:`ChatCompletionRequest` or :class:`EmbeddingsRequest` (declared below
for ``/openapi.json``, not parsed twice) and whose reply goes out as is; errors answer OpenAI's
``{"error": {...}}`` shape; a caller whose usage budget is spent gets 429 ``insufficient_quota`` first.
Authentication is the protected router's dependency; the handlers take the services straight from the
app rather than through more dependencies, each of which costs a resolution step per request. A client
that hangs up before its JSON answer is ready cancels the work, as with OpenAI (a stream stops too).
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ailab.api.deps import CurrentUser
from ailab.api.disconnect import CLIENT_CLOSED_REQUEST, until_disconnected
from ailab.api.errors import request_id
from ailab.api.openapi import json_body
from ailab.api.schemas.common import event_stream
from ailab.api.schemas.openai import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingsRequest,
    ModelList,
    OpenAIProblem,
)
from ailab.api.sse import DirectStreamResponse
from ailab.services.auth.accounts import Principal
from ailab.services.container import Services

_ERRORS = (400, 401, 403, 404, 413, 415, 422, 429, 500, 502, 503, 504)
router = APIRouter(
    prefix="/v1",
    tags=["openai-compatible"],
    responses={
        status: {"model": OpenAIProblem, "description": "an error in OpenAI's shape"} for status in _ERRORS
    },
)
STREAM_DOC = "With `stream: true`: `chat.completion.chunk` events, then `data: [DONE]`."


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> Response:
    """Every model of every configured backend, ids ``provider/model``, and every ``pipeline/<name>``."""
    models = await _services(request).gateway.models()
    return Response(orjson.dumps(models), media_type="application/json")


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: event_stream(STREAM_DOC)},
    openapi_extra=json_body(ChatCompletionRequest),
)
async def chat_completions(request: Request, user: CurrentUser) -> Response:
    """OpenAI's chat completions, streamed or not, for any configured model or pipeline."""
    return await answer_chat_completions(request, user, await request.body())


async def answer_chat_completions(request: Request, user: Principal, body: bytes) -> Response:
    """The chat completions answer for ``user`` to ``body`` (also served by the fast lane)."""
    services = _services(request)
    services.usage.check(user.id, user.token_id, body)  # a spent budget: 429 before anything is sent
    work = services.gateway.chat_completions(body, requester=user.id, request_id=request_id(request))
    reply = await until_disconnected(request.receive, work)
    if reply is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody reads it: for the access log
    if reply.stream is not None:
        return DirectStreamResponse(reply.stream, status_code=reply.status, media_type=reply.content_type)
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)


@router.post("/embeddings", response_model=EmbeddingList, openapi_extra=json_body(EmbeddingsRequest))
async def embeddings(request: Request, user: CurrentUser) -> Response:
    """OpenAI's embeddings, for a model of any provider that has embeddings, or an alias of such models."""
    return await answer_embeddings(request, user, await request.body())


async def answer_embeddings(request: Request, user: Principal, body: bytes) -> Response:
    """The embeddings answer to ``body`` (also served by the fast lane)."""
    services = _services(request)
    services.usage.check(user.id, user.token_id, body)
    reply = await until_disconnected(request.receive, services.gateway.embeddings(body))
    if reply is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody reads it: for the access log
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)
