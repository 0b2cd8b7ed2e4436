"""An error event in the middle of an OpenAI-wire stream: raised, with our key scrubbed from it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ailab.errors import ProviderUnavailable
from ailab.providers import openai_compat
from ailab.providers.base import ChatMessage, ChatRequest
from tests.providers.conftest import ProviderFactory
from tests.support.postgres import free_port

KEY = "sk-compat-0123456789abcdef"


async def stream_then_fail(request: web.Request) -> web.StreamResponse:
    """One text chunk, then an error event quoting the key the client sent (as a careless server may)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    chunk = b'{"choices": [{"index": 0, "delta": {"content": "Hel"}}]}'
    await response.write(b"data: " + chunk + b"\n\n")
    sent_key = request.headers["Authorization"].removeprefix("Bearer ")
    error = b'{"error": {"message": "overloaded while serving key ' + sent_key.encode() + b'"}}'
    await response.write(b"data: " + error + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    return response


@pytest.fixture
async def failing_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream_then_fail)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_an_error_event_mid_stream_is_raised_without_the_key(
    failing_upstream: str, build: ProviderFactory
) -> None:
    provider = build(openai_compat.PLUGIN, openai_compat_base_url=failing_upstream, openai_compat_api_key=KEY)
    request = ChatRequest(model="any", messages=[ChatMessage("user", "hi")])
    received: list[str] = []

    async def consume() -> None:
        async for chunk in provider.stream(request):
            received.append(chunk.delta)

    with pytest.raises(ProviderUnavailable) as caught:
        await consume()
    assert received == ["Hel"]
    assert "failed mid-stream: overloaded while serving key" in caught.value.message
    assert KEY not in caught.value.message and KEY not in str(caught.value)
