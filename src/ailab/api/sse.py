"""Server-Sent Events responses (``/chat`` and the gateway's streams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ailab.api.disconnect import HangUpWatch

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class DirectStreamResponse(StreamingResponse):
    """A streamed response with a light disconnect watch, that always closes its generator.

    Starlette's streaming response puts the sending and a disconnect listener in an anyio task group per
    request, which costs more than the gateway's whole budget. Here the sending stays in the request's own
    task, and a :class:`~ailab.api.disconnect.HangUpWatch` (a task only once the stream has run a moment:
    one per request costs more than the gateway's own work on a fast upstream) cancels it when the client
    goes away, which closes the generator (stopping the upstream or the local generation) at once, even
    while it waits for the next chunk. However the response ends (finished, client gone, shutdown), the
    generator is closed explicitly, so its clean-up (storing a partial answer) runs now rather than
    whenever the garbage collector finalises it.
    """

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        *,
        status_code: int = 200,
        media_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        all_headers = SSE_HEADERS if headers is None else {**SSE_HEADERS, **headers}
        super().__init__(chunks, status_code=status_code, media_type=media_type, headers=all_headers)
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = HangUpWatch(receive)
        finished = False
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finished = True  # the generator has ended: closing it below has nothing left to run
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.gone:
                raise  # cancelled from outside (shutdown): not ours to swallow
            watch.task.uncancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            watch.stop()  # before the clean-up, which a late hang-up must not cancel
            if finished:
                await self._chunks.aclose()
            else:  # shielded: its clean-up must run even while this task is being cancelled
                await asyncio.shield(asyncio.ensure_future(self._chunks.aclose()))
