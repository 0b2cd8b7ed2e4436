"""Helpers of the /chat tests (the upstream and the app wired to it are ``upstream`` and
``upstream_client`` in tests/conftest.py): SSE parsing, and a raw ASGI driver that can hang up
mid-stream the way uvicorn reports it (``http.disconnect``).

Each test that builds the app runs through the fast lane and through FastAPI's routes (``both_lanes``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import both_lanes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both_lanes(metafunc)


def parse_sse(text: str) -> list[Any]:
    """The ``data:`` payloads of an event stream, JSON-decoded (``[DONE]`` kept as a string)."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


@dataclass
class HangUp:
    """What a client that hung up mid-stream saw."""

    status: int = 0
    events: list[Any] = field(default_factory=list)


async def stream_then_hang_up(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    after_deltas: int,
    on_delta: Callable[[], None] = lambda: None,
) -> HangUp:
    """POST /chat with ``body`` straight to the ASGI app; hang up after ``after_deltas`` delta events.

    Like uvicorn (ASGI spec 2.3), the hang-up is an ``http.disconnect`` from ``receive``. Returns when the
    app's call has returned.
    """
    app = client.app  # type: ignore[attr-defined]
    raw = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    headers += [
        (k.lower().encode(), v.encode()) for k, v in client.headers.items() if k.lower() == "authorization"
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/chat",
        "raw_path": b"/chat",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    hung_up = asyncio.Event()
    sent_body = False
    seen = HangUp()
    buffer = b""

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal buffer
        if message["type"] == "http.response.start":
            seen.status = message["status"]
            return
        if hung_up.is_set():
            return  # uvicorn drops what is sent after the client left
        buffer += message.get("body", b"")
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            event = parse_sse(block.decode() + "\n\n")[0]
            seen.events.append(event)
            if isinstance(event, dict) and event.get("type") == "delta":
                on_delta()
                if (
                    sum(1 for e in seen.events if isinstance(e, dict) and e.get("type") == "delta")
                    >= after_deltas
                ):
                    hung_up.set()

    await asyncio.wait_for(app(scope, receive, send), timeout=60)
    return seen
