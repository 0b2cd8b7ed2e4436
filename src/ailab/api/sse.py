"""Server-Sent Events responses (``/chat`` and the gateway's streams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ailab.api.disconnect import WATCH_AFTER_S

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class DirectStreamResponse(StreamingResponse):
    """A streamed response with a light disconnect watch, that always closes its generator.

    Starlette's streaming response puts the sending and a disconnect listener in an anyio task group per
    request, which costs more than the gateway's whole budget. Here the sending stays in the request's own
    task and, once the stream has run for ``WATCH_AFTER_S`` (a stream done sooner needs no watching, and
    a task per request costs more than the gateway's own work on a fast upstream), one plain asyncio task
    waits for ``http.disconnect``; when the client goes away it cancels the sending, which closes the
    generator (stopping the upstream or the local generation) at once, even while it waits for the next
    chunk. However the response ends (finished, client gone, shutdown), the generator is closed
    explicitly, so its clean-up (storing a partial answer) runs now rather than whenever the garbage
    collector finalises it.
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
        sender = asyncio.current_task()
        assert sender is not None
        client_gone = False
        watcher: asyncio.Future[None] | None = None

        async def watch() -> None:
            nonlocal client_gone
            while (await receive())["type"] != "http.disconnect":
                pass
            client_gone = True
            sender.cancel()

        def start_watching() -> None:
            nonlocal watcher
            watcher = asyncio.ensure_future(watch())

        timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start_watching)
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
            if not client_gone:
                raise  # cancelled from outside (shutdown): not ours to swallow
            sender.uncancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()
            if finished:
                await self._chunks.aclose()
            else:  # shielded: its clean-up must run even while this task is being cancelled
                await asyncio.shield(asyncio.ensure_future(self._chunks.aclose()))
