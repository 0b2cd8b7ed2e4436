"""Cancelling work whose client has hung up, as OpenAI's API does for a non-streamed completion.

A JSON answer is only written at the end, so without this a client that gave up would still have its
whole answer generated, holding the model (the embedded one serves one request at a time) for nobody. A
streamed answer (``sse.DirectStreamResponse``) keeps the same :class:`HangUpWatch` while it sends.

Watching costs a task per request, more than the gateway's own work on a fast upstream; so the watch
starts only once the work has taken ``WATCH_AFTER_S`` (a timer costs little): an answer that quick needs
no cancelling, and a hang-up is still noticed within that time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

T = TypeVar("T")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request its client abandoned (for logs and metrics)
WATCH_AFTER_S = 0.05


class HangUpWatch:
    """Cancels the current task when its client hangs up, listening from ``WATCH_AFTER_S`` on (a timer
    until then, not a task); :meth:`stop` it when the work is done. ``gone`` says whether the client left.
    """

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.gone = False
        self._receive = receive
        self._watcher: asyncio.Future[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._start)

    def _start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        """Stop watching (again: nothing)."""
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


async def until_disconnected(receive: Receive, work: Awaitable[T]) -> T | None:
    """``await work``, cancelled as soon as the client hangs up; None when it did.

    Call it once the request body has been read: from then on ``receive`` only reports the hang-up.
    """
    watch = HangUpWatch(receive)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.gone:
            raise  # cancelled from outside (shutdown): not ours to swallow
        watch.task.uncancel()
        return None
    finally:
        watch.stop()
