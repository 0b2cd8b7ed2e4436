"""A recording OpenAI-compatible upstream on 127.0.0.1, for the /chat and gateway tests.

It speaks OpenAI's real wire format (``GET /v1/models``, ``POST /v1/chat/completions`` with and without
``stream``, ``stream_options.include_usage``, OpenAI-shaped errors) and records every request body and
header it receives. Models:

- ``echo``: answers ``"echo: <the last user message>"`` in three chunks;
- ``slow``: streams ``"tick "`` forever, one chunk each time :meth:`FakeUpstream.release` is called
  (so tests pace it with events, not sleeps), and sets ``disconnected`` when the client goes away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

MODELS = ("echo", "slow")


@dataclass
class FakeUpstream:
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    ticks_sent: int = 0
    _ticks: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))

    def release(self, count: int = 1) -> None:
        """Let the ``slow`` model send ``count`` more chunks."""
        for _ in range(count):
            self._ticks.release()

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _usage(payload: dict[str, Any], completion: int) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in payload.get("messages", []))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunk(model: str, delta: dict[str, Any], finish: str | None, usage_null: bool) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage_null:
        body["usage"] = None
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _error(status: int, message: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}}
    return web.json_response(body, status=status)


def build_app(state: FakeUpstream) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    async def completions(request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        state.requests.append(payload)
        state.headers.append(dict(request.headers))
        model = payload.get("model")
        if model not in MODELS:
            return _error(404, f"The model `{model}` does not exist", "model_not_found")
        last_user = next((m["content"] for m in reversed(payload["messages"]) if m.get("role") == "user"), "")
        pieces = ["echo", ": ", str(last_user)]
        if not payload.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(pieces)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": _usage(payload, len(pieces)),
                }
            )
        options = payload.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await response.write(_chunk(model, {"role": "assistant", "content": ""}, None, include_usage))
            if model == "slow":
                while True:
                    await state._ticks.acquire()
                    await response.write(_chunk(model, {"content": "tick "}, None, include_usage))
                    state.ticks_sent += 1
            for piece in pieces:
                await response.write(_chunk(model, {"content": piece}, None, include_usage))
            await response.write(_chunk(model, {}, "stop", include_usage))
            if include_usage:
                usage_event = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": _usage(payload, len(pieces)),
                }
                await response.write(b"data: " + orjson.dumps(usage_event) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            state.disconnected.set()
            raise
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", completions)
    return app


@asynccontextmanager
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    """Run the fake on a free port of 127.0.0.1; ``base_url`` ends in ``/v1``."""
    state = FakeUpstream()
    runner = web.AppRunner(build_app(state), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield state
    finally:
        await runner.cleanup()
