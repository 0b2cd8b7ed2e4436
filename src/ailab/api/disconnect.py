"""Cancelling work whose client has hung up, as OpenAI's API does for a non-streamed completion.

A streamed answer notices the hang-up itself (``sse.DirectStreamResponse``); a JSON answer is only
written at the end, so without this a client that gave up would still have its whole answer generated,
holding the model (the embedded one serves one request at a time) for nobody.

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


async def until_disconnected(receive: Receive, work: Awaitable[T]) -> T | None:
    """``await work``, cancelled as soon as the client hangs up; None when it did.

    Call it once the request body has been read: from then on ``receive`` only reports the hang-up.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False
    watcher: asyncio.Future[None] | None = None

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside (shutdown): not ours to swallow
        task.uncancel()
        return None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
