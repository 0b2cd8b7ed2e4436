"""The OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Thin on purpose (this is the hot path): the body is read as bytes and handed to the gateway service,
whose reply goes out as is; errors answer OpenAI's ``{"error": {...}}`` shape (``api/errors.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.api.sse import EventStreamResponse

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


@router.get("/models")
async def list_models(user: CurrentUser, services: ServicesDep) -> Any:
    """Every model of every configured backend, ids ``provider/model``."""
    return await services.gateway.models()


@router.post("/chat/completions", response_model=None)
async def chat_completions(request: Request, user: CurrentUser, services: ServicesDep) -> Response:
    """OpenAI's chat completions, streamed or not, for any configured model."""
    reply = await services.gateway.chat_completions(await request.body())
    if reply.stream is not None:
        return EventStreamResponse(reply.stream, status_code=reply.status, media_type=reply.content_type)
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)
