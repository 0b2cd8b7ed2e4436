"""The login throttle on its own: in memory (with a clock the test moves) and shared through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ailab.errors import SharedStateUnavailable
from ailab.services.auth.throttle import ADDRESS_FACTOR, LoginThrottle, MemoryThrottle, RedisThrottle
from tests.support.redis import redis_or_skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[type]:
    """``make(max_failures, window)``: a throttle of the parametrised kind (Redis keys unique per test)."""
    if request.param == "memory":
        yield lambda limit, window: MemoryThrottle(limit, window, clock=Clock())
        return
    client = await redis_or_skip(request.getfixturevalue("redis_url"))
    prefix = f"ailab-test-{uuid.uuid4().hex}"
    yield lambda limit, window: RedisThrottle(client, limit, window, prefix=prefix)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_attempts_are_counted_before_they_are_checked_and_a_name_locks(make: type) -> None:
    throttle: LoginThrottle = make(3, 60)
    admitted = [await throttle.begin("admin", "1.2.3.4") for _ in range(3)]
    assert all(a.name_wait == 0 for a in admitted)  # the third reached the limit, and was let through
    refused = await throttle.begin("admin", "5.6.7.8")
    assert 59 <= refused.name_wait <= 60  # from any address
    assert (await throttle.begin("ADMIN", None)).name_wait > 0  # names count case-insensitively
    assert (await throttle.begin("other", "5.6.7.8")).name_wait == 0


async def test_a_burst_is_admitted_only_up_to_the_limit(make: type) -> None:
    throttle: LoginThrottle = make(5, 60)
    burst = await asyncio.gather(*(throttle.begin("admin", f"10.0.0.{i}") for i in range(40)))
    assert sum(a.name_wait == 0 for a in burst) == 5


async def test_success_refunds_the_attempt_and_clears_the_name(make: type) -> None:
    throttle: LoginThrottle = make(3, 60)
    for _ in range(2):
        await throttle.begin("admin", "1.1.1.1")
    await throttle.succeeded("admin", "1.1.1.1")  # the third attempt was right
    for _ in range(2):
        assert (await throttle.begin("admin", "1.1.1.1")).name_wait == 0
    assert (await throttle.begin("admin", "1.1.1.1")).name_wait == 0  # 3rd since the success: at limit
    assert (await throttle.begin("admin", "1.1.1.1")).name_wait > 0


async def test_an_address_is_slowed_after_more_attempts_than_a_name_and_never_locks_names(make: type) -> None:
    throttle: LoginThrottle = make(2, 30)
    for i in range(2 * ADDRESS_FACTOR):
        admission = await throttle.begin(f"name{i}", "9.9.9.9")
        assert admission.name_wait == 0 and admission.address_wait == 0
    over = await throttle.begin("fresh", "9.9.9.9")
    assert over.address_wait > 0 and over.name_wait == 0  # slowed down, not refused
    assert (await throttle.begin("fresh", "8.8.8.8")).address_wait == 0


def test_memory_counts_slide_out_of_the_window() -> None:
    clock = Clock()
    throttle = MemoryThrottle(3, 60, clock=clock)

    async def run() -> None:
        await throttle.begin("admin", None)
        await throttle.begin("admin", None)
        clock.now += 61
        assert (await throttle.begin("admin", None)).name_wait == 0
        await throttle.begin("admin", None)
        await throttle.begin("admin", None)
        assert (await throttle.begin("admin", None)).name_wait == 60
        clock.now += 60
        assert (await throttle.begin("admin", None)).name_wait == 0

    asyncio.run(run())


async def test_a_redis_that_does_not_answer_is_a_503_not_a_free_pass() -> None:
    gone = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    throttle = RedisThrottle(gone, 3, 60)
    with pytest.raises(SharedStateUnavailable) as caught:
        await throttle.begin("admin", "1.1.1.1")
    assert caught.value.status == 503
    assert isinstance(caught.value.__cause__, RedisError)
    await gone.aclose()
