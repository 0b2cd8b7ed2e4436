"""The OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Thin on purpose (this is the hot path): the body is read as bytes and handed to the gateway service,
whose reply goes out as is; errors answer OpenAI's ``{"error": {...}}`` shape (``api/errors.py``).
Authentication is the protected router's dependency; the handlers take the services straight from the
app rather than through more dependencies, each of which costs a resolution step per request.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ailab.api.sse import DirectStreamResponse
from ailab.services.container import Services

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/models", response_model=None)
async def list_models(request: Request) -> Response:
    """Every model of every configured backend, ids ``provider/model``."""
    models = await _services(request).gateway.models()
    return Response(orjson.dumps(models), media_type="application/json")


@router.post("/chat/completions", response_model=None)
async def chat_completions(request: Request) -> Response:
    """OpenAI's chat completions, streamed or not, for any configured model."""
    reply = await _services(request).gateway.chat_completions(await request.body())
    if reply.stream is not None:
        return DirectStreamResponse(reply.stream, status_code=reply.status, media_type=reply.content_type)
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)
