"""Server-Sent Events responses.

:class:`EventStreamResponse` is Starlette's streaming response with one addition: when the response ends
for any reason (finished, client gone, server shutting down) it closes its event generator explicitly,
so the generator's clean-up (stopping a generation, storing a partial answer) runs at once rather than
whenever the garbage collector finalises it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: Any) -> bytes:
    """One ``data: {json}`` event."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response over an async generator of encoded events."""

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        *,
        status_code: int = 200,
        media_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            events, status_code=status_code, media_type=media_type, headers={**SSE_HEADERS, **(headers or {})}
        )
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Its own task: the request's cancellation must not interrupt the clean-up.
            await asyncio.shield(asyncio.ensure_future(self._events.aclose()))


class DirectStreamResponse(StreamingResponse):
    """A streamed response with a lighter disconnect watch, for the gateway's hot path.

    Starlette's streaming response puts the sending and a disconnect listener in an anyio task group per
    request. Here the sending stays in the request's own task and one plain asyncio task waits for
    ``http.disconnect``; when the client goes away it cancels the sending, which closes the generator
    (stopping the upstream or the local generation) at once, even while it waits for the next chunk.
    """

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        *,
        status_code: int = 200,
        media_type: str = "text/event-stream",
    ) -> None:
        super().__init__(chunks, status_code=status_code, media_type=media_type, headers=SSE_HEADERS)
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender = asyncio.current_task()
        assert sender is not None
        client_gone = False

        async def watch() -> None:
            nonlocal client_gone
            while (await receive())["type"] != "http.disconnect":
                pass
            client_gone = True
            sender.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not client_gone:
                raise  # cancelled from outside (shutdown): not ours to swallow
            sender.uncancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            watcher.cancel()
            await asyncio.shield(asyncio.ensure_future(self._chunks.aclose()))
