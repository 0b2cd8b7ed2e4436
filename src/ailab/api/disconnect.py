"""Cancelling work whose client has hung up, as OpenAI's API does for a non-streamed completion.

A JSON answer is only written at the end, so without this a client that gave up would still have its
whole answer generated, holding the model (the embedded one serves one request at a time) for nobody. A
streamed answer (``sse.DirectStreamResponse``) keeps the same :class:`HangUpWatch` while it sends.

Watching costs a task per request, more than the gateway's own work on a fast upstream; so the watch
starts only for work that lasts, one to two periods of ``late.PERIOD_S`` (50 ms) in: an answer that quick
needs no cancelling, and a hang-up is still noticed within 100 ms. Until then a watch is a place in its
loop's :class:`~ailab.late.LateStarts` (0.6 us per request, where a timer armed and cancelled per request
made it 3.2 us with uvloop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

from ailab.late import LATE_STARTS

T = TypeVar("T")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request its client abandoned (for logs and metrics)


class HangUpWatch:
    """Cancels the current task when its client hangs up, listening once the work has lasted (see the
    module docstring); :meth:`stop` it when the work is done. ``gone`` says whether the client left.
    """

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.gone = False
        self._receive = receive
        self._watcher: asyncio.Future[None] | None = None
        self._late = LATE_STARTS.of(task.get_loop())
        self._late.add(self)

    def start(self) -> None:
        """Listen for the hang-up from now on (its loop's late starts call this)."""
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        """Stop watching (again: nothing)."""
        self._late.discard(self)
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
