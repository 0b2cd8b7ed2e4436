"""A minimal OpenAI ``GET /v1/models`` server on 127.0.0.1, for key tests (a real aiohttp server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeOpenAI:
    """The running server: ``base_url`` (ending in /v1), the one key it accepts, the keys it saw."""

    base_url: str
    api_key: str
    seen_keys: list[str] = field(default_factory=list)


@asynccontextmanager
async def fake_openai(api_key: str) -> AsyncIterator[FakeOpenAI]:
    """Serve ``GET /v1/models``: 200 with two models for ``api_key``, OpenAI's 401 answer otherwise."""
    state = FakeOpenAI(base_url="", api_key=api_key)

    async def models(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        state.seen_keys.append(key)
        if key != api_key:
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
                    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
                ],
            }
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield state
    finally:
        await runner.cleanup()
