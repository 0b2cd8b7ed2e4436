"""The hang-up watch: it listens only once its work has run through a whole period (its loop's late
starts start it), and a client that leaves cancels the work. The ticks are driven by
hand here (the period is an hour, so the loop's own timer never fires during a test)."""

from __future__ import annotations

import asyncio

import pytest

from ailab import late
from ailab.api.disconnect import until_disconnected
from ailab.late import LATE_STARTS


class Client:
    """An ASGI ``receive`` after the body was read: it reports the hang-up when told to leave."""

    def __init__(self) -> None:
        self.listened = asyncio.Event()
        self.leave = asyncio.Event()

    async def __call__(self) -> dict[str, str]:
        self.listened.set()
        await self.leave.wait()
        return {"type": "http.disconnect"}


class Work:
    """Work that runs until it is finished or cancelled."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.finish = asyncio.Event()
        self.cancelled = False

    async def __call__(self) -> str:
        self.running.set()
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "answer"


@pytest.fixture(autouse=True)
def an_hour_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(late, "PERIOD_S", 3600.0)


async def test_a_client_that_leaves_cancels_the_work_once_the_watch_listens() -> None:
    client, work = Client(), Work()
    answer = asyncio.create_task(until_disconnected(client, work()))
    await work.running.wait()
    watches = LATE_STARTS.of(asyncio.get_running_loop())
    assert watches.ticking
    watches.tick()  # the watch was added in this period: it waits a whole one more
    watches.tick()
    await client.listened.wait()
    client.leave.set()
    assert await answer is None
    assert work.cancelled


async def test_work_done_within_a_period_never_listens_and_the_ticks_stop() -> None:
    client, work = Client(), Work()
    answer = asyncio.create_task(until_disconnected(client, work()))
    await work.running.wait()
    watches = LATE_STARTS.of(asyncio.get_running_loop())
    watches.tick()
    work.finish.set()
    assert await answer == "answer"
    watches.tick()  # nothing waits any more: no watch starts, and no tick is armed
    assert not watches.ticking
    assert not client.listened.is_set()


async def test_a_cancel_from_elsewhere_is_not_swallowed() -> None:
    client, work = Client(), Work()
    answer = asyncio.create_task(until_disconnected(client, work()))
    await work.running.wait()
    answer.cancel()  # a shutdown, not the client
    with pytest.raises(asyncio.CancelledError):
        await answer
    assert work.cancelled and not client.listened.is_set()
