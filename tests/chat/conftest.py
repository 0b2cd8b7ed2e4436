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


def parse_sse(text: str, *, with_run: bool = False) -> list[Any]:
    """The ``data:`` payloads of an event stream, JSON-decoded (``[DONE]`` kept as a string); a run's
    first event (``run``) only ``with_run``. Checks that the ids are a sequence with no gap."""
    return [
        data
        for _, data in sse_events(text)
        if with_run or not (isinstance(data, dict) and data.get("type") == "run")
    ]


def sse_events(text: str, *, consecutive: bool = True) -> list[tuple[int | None, Any]]:
    """``(id, payload)`` of each event of a stream (``id`` None for ``[DONE]`` and where a stream has
    none, as ``/v1``'s), the ids checked to be consecutive (a replay from a run's stored record skips from
    the ``run`` event to the last)."""
    events: list[tuple[int | None, Any]] = []
    previous: int | None = None
    for whole in text.split("\n\n"):
        if not whole.strip():
            continue
        event_id: int | None = None
        block = whole
        if block.startswith("id: "):
            id_line, block = block.split("\n", 1)
            event_id = int(id_line[len("id: ") :])
            assert previous is None or event_id == previous + 1 or not consecutive, (previous, event_id)
            previous = event_id
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        assert data != "[DONE]" or event_id is None, block
        events.append((event_id, data if data == "[DONE]" else orjson.loads(data)))
    return events


@dataclass
class HangUp:
    """What a client that hung up mid-stream saw: the events (the ``run`` one first) and their ids."""

    status: int = 0
    events: list[Any] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The run the stream belonged to."""
        return str(self.events[0]["run_id"])

    @property
    def last_id(self) -> int:
        """The id of the last numbered event seen."""
        return max(i for i in self.ids if i is not None)

    @property
    def deltas(self) -> list[str]:
        """The text of the delta events seen."""
        return [e["delta"] for e in self.events if isinstance(e, dict) and e.get("type") == "delta"]


async def stream_then_hang_up(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    after_deltas: int,
    on_delta: Callable[[], None] = lambda: None,
) -> HangUp:
    """POST /chat with ``body`` straight to the ASGI app; hang up after ``after_deltas`` delta events."""

    def enough(seen: HangUp) -> bool:
        if seen.events and isinstance(seen.events[-1], dict) and seen.events[-1].get("type") == "delta":
            on_delta()
        return len(seen.deltas) >= after_deltas

    return await asgi_stream(client, "POST", "/chat", body=body, hang_up_when=enough)


async def asgi_stream(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    hang_up_when: Callable[[HangUp], bool] = lambda _seen: False,
) -> HangUp:
    """An event-stream request straight to the client's ASGI app, read event by event as it comes
    (httpx's ASGI transport gives a body only once it is whole); hangs up when ``hang_up_when(seen)``
    says so after an event.

    Like uvicorn (ASGI spec 2.3), the hang-up is an ``http.disconnect`` from ``receive``. Returns when the
    app's call has returned.
    """
    app = client.app  # type: ignore[attr-defined]
    raw = orjson.dumps(body) if body is not None else b""
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    raw_headers += [
        (k.lower().encode(), v.encode()) for k, v in client.headers.items() if k.lower() == "authorization"
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
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
            seen.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            return
        if hung_up.is_set():
            return  # uvicorn drops what is sent after the client left
        buffer += message.get("body", b"")
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            if seen.status != 200:
                seen.events.append(orjson.loads(block))
                continue
            event_id, event = sse_events(block.decode() + "\n\n")[0]
            seen.events.append(event)
            seen.ids.append(event_id)
            if hang_up_when(seen):
                hung_up.set()
        if seen.status != 200 and not message.get("more_body") and buffer:
            seen.events.append(orjson.loads(buffer))

    await asyncio.wait_for(app(scope, receive, send), timeout=60)
    return seen
