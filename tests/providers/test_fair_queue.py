"""The queue in front of the embedded model: bounded, round-robin between users, cancellable."""

from __future__ import annotations

import asyncio

import pytest

from ailab.errors import ModelBusy, ProviderUnavailable
from ailab.providers.fair_queue import FairQueue, Slot


async def settle() -> None:
    """One turn of the loop: every task created before has run up to its first wait."""
    await asyncio.sleep(0)


async def test_turns_go_round_robin_between_lanes_and_in_order_within_one() -> None:
    queue = FairQueue("the model", max_waiting=10, max_wait_s=5)
    holder = await queue.acquire("alice")
    served: list[str] = []

    async def request(name: str, lane: str) -> None:
        slot = await queue.acquire(lane)
        served.append(name)
        slot.release()

    tasks = [
        asyncio.create_task(request(name, lane))
        for name, lane in [("a1", "alice"), ("a2", "alice"), ("a3", "alice"), ("b1", "bob"), ("c1", "carol")]
    ]
    await settle()
    assert queue.waiting == 5
    holder.release()
    await asyncio.gather(*tasks)
    assert served == ["a1", "b1", "c1", "a2", "a3"]
    assert queue.holders == 0 and queue.waiting == 0


async def test_a_full_queue_refuses_at_once_with_a_retry_after() -> None:
    queue = FairQueue("the model", max_waiting=1, max_wait_s=5)
    holder = await queue.acquire()
    waiter = asyncio.create_task(queue.acquire())
    await settle()
    with pytest.raises(ModelBusy, match="1 requests are already waiting") as refused:
        await queue.acquire()
    assert refused.value.status == 503
    assert refused.value.retry_after >= 1
    holder.release()
    (await waiter).release()
    assert queue.holders == 0


async def test_a_request_that_waits_too_long_gives_up_and_leaves_the_queue() -> None:
    queue = FairQueue("the model", max_waiting=4, max_wait_s=0.05)
    holder = await queue.acquire()
    with pytest.raises(ModelBusy, match=r"no turn within 0\.05s"):
        await queue.acquire("bob")
    assert queue.waiting == 0
    holder.release()
    assert queue.holders == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_gets_the_turn() -> None:
    queue = FairQueue("the model", max_waiting=4, max_wait_s=5)
    holder = await queue.acquire()
    gone = asyncio.create_task(queue.acquire("alice"))
    stays = asyncio.create_task(queue.acquire("bob"))
    await settle()
    gone.cancel()
    await settle()
    assert queue.waiting == 1
    holder.release()
    slot = await stays
    assert isinstance(slot, Slot)
    assert gone.cancelled()
    slot.release()
    slot.release()  # idempotent
    assert queue.holders == 0


async def test_closing_wakes_the_waiters_and_refuses_new_requests() -> None:
    queue = FairQueue("the model", max_waiting=4, max_wait_s=5)
    await queue.acquire()
    waiter = asyncio.create_task(queue.acquire())
    await settle()
    queue.close()
    with pytest.raises(ProviderUnavailable, match="shutting down"):
        await waiter
    with pytest.raises(ProviderUnavailable, match="shutting down"):
        await queue.acquire()
