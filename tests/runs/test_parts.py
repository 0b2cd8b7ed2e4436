"""The parts of runs on their own: the event buffer, the per-user limit (in memory and in Redis) and
the liveness of a run's process."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import psutil
import pytest

from ailab.errors import TooManyRunning
from ailab.services.runs.events import DONE_FRAME, RunEvents, frame
from ailab.services.runs.limits import MemoryRunLimits, RedisRunLimits
from ailab.services.runs.liveness import is_alive, this_instance
from tests.support.redis import redis_or_skip, unique_prefix

NOW = dt.datetime.now(dt.UTC)


async def collect(events: RunEvents, after: int = 0) -> list[bytes]:
    return [chunk async for chunk in events.follow(after)]


async def test_followers_get_every_event_once_from_where_they_start() -> None:
    events = RunEvents()
    assert events.add({"n": "a"}) == 1
    early = asyncio.create_task(collect(events))
    late = asyncio.create_task(collect(events, after=1))
    await asyncio.sleep(0)  # both followers now wait for the next event
    assert events.add({"n": "b"}) == 2
    assert events.add({"n": "c"}) == 3
    events.close(0.0)
    a, b, c = frame(1, b'{"n":"a"}'), frame(2, b'{"n":"b"}'), frame(3, b'{"n":"c"}')
    assert b"".join(await early) == a + b + c + DONE_FRAME
    assert b"".join(await late) == b + c + DONE_FRAME
    assert await collect(events, after=3) == [DONE_FRAME]


async def test_a_run_with_more_events_than_kept_drops_the_oldest() -> None:
    events = RunEvents(max_events=10)
    for i in range(25):
        events.add({"i": i})
    events.close(0.0)
    assert events.last_seq == 25 and events.first_seq > 1
    replay = b"".join(await collect(events))
    assert replay.startswith(frame(events.first_seq, b'{"i":%d}' % (events.first_seq - 1)))
    assert replay.endswith(frame(25, b'{"i":24}') + DONE_FRAME)


@pytest.fixture(params=["memory", "redis"])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    if request.param == "memory":
        yield MemoryRunLimits(2)
        return
    client = await redis_or_skip(request.getfixturevalue("redis_url"))
    yield RedisRunLimits(client, 2, lease_s=30, prefix=unique_prefix())
    await client.aclose()


async def test_a_user_gets_as_many_runs_as_the_limit_and_one_more_once_one_ends(limits: object) -> None:
    assert isinstance(limits, MemoryRunLimits | RedisRunLimits)
    results = await asyncio.gather(
        *(limits.acquire("ann", f"run-{i}") for i in range(5)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 2  # never more, even when they arrive at once
    assert all(isinstance(r, TooManyRunning) and r.retry_after > 0 for r in results if r is not None)
    await limits.acquire("bob", "bob-1")  # per user
    taken = [f"run-{i}" for i, r in enumerate(results) if r is None]
    await limits.release("ann", taken[0])
    await limits.acquire("ann", "run-9")
    with pytest.raises(TooManyRunning):
        await limits.acquire("ann", "run-10")


async def test_in_redis_the_runs_of_a_replica_that_died_stop_counting_when_their_lease_ends(
    redis_url: str,
) -> None:
    client = await redis_or_skip(redis_url)
    prefix = unique_prefix()
    dead = RedisRunLimits(client, 1, lease_s=0.05, prefix=prefix)  # its lease is never renewed
    await dead.acquire("ann", "orphan")
    alive = RedisRunLimits(client, 1, lease_s=30, prefix=prefix)
    with pytest.raises(TooManyRunning):
        await alive.acquire("ann", "new")
    await asyncio.sleep(0.1)  # the orphan's lease of 50 ms ends: this is the time under test
    await alive.acquire("ann", "new")
    await client.aclose()


def test_a_process_is_alive_while_it_runs_with_the_same_start_time() -> None:
    me = this_instance()
    assert is_alive(me, NOW - dt.timedelta(hours=1), NOW, me)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = this_instance().rsplit("/", 2)[0]
        start_ms = int(psutil.Process(child.pid).create_time() * 1000)
        other = f"{started}/{child.pid}/{start_ms}"
        assert is_alive(other, NOW - dt.timedelta(hours=1), NOW, me)  # on this host the lease is not needed
        assert not is_alive(f"{started}/{child.pid}/{start_ms + 1}", NOW, NOW, me)  # a reused pid
    finally:
        child.kill()
        child.wait()
    assert not is_alive(other, NOW + dt.timedelta(hours=1), NOW, me)  # gone, whatever its lease said
    assert os.getpid() != child.pid


def test_a_process_on_another_host_is_alive_while_its_lease_lasts() -> None:
    elsewhere = f"not-{socket.gethostname()}/123/456"
    me = this_instance()
    assert is_alive(elsewhere, NOW + dt.timedelta(seconds=5), NOW, me)
    assert not is_alive(elsewhere, NOW - dt.timedelta(seconds=5), NOW, me)
