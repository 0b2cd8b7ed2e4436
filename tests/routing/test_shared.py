"""Two replicas on one models file and one Redis (``AILAB_REDIS_URL``): a deployment that failed on one
is left out by the other, and Redis going away never fails a request."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from ailab.services.routing.cooldowns import SYNC_INTERVAL_S
from tests.fakes.openai_server import FakeOpenAI
from tests.routing.conftest import AliasApp, MakeRouting, alias_yaml
from tests.support.redis import unique_prefix

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def answer(reply: Any) -> str:
    assert reply.status_code == 200, reply.text
    return str(reply.json()["choices"][0]["message"]["content"])


async def test_a_cool_down_of_one_replica_holds_on_the_other(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI, redis_url: str
) -> None:
    prefix = unique_prefix()
    shared = {"redis_url": redis_url, "redis_prefix": prefix}
    yaml = alias_yaml(a, b, cooldown="{failures: 2, seconds: 60}", retries=0)
    async with alias_app(yaml, **shared) as one, alias_app(None, **shared) as two:
        assert two.services.routing.names() == ["fast"]  # type: ignore[attr-defined]  # the same file
        a.fail_status = 500
        assert [answer(await one.post("/v1/chat/completions", json=BODY)) for _ in range(2)] == ["from b"] * 2
        assert len(a.requests) == 2  # tried first both times; now it cools down, in Redis
        redis = one.services.redis  # type: ignore[attr-defined]
        assert 0 < await redis.pttl(f"{prefix}:routing:cool:openai-compat/m") <= 60_000

        # The other replica has never seen a fail, yet leaves it out from its first request on.
        assert [answer(await two.post("/v1/chat/completions", json=BODY)) for _ in range(3)] == ["from b"] * 3
        assert len(a.requests) == 2
        status = (await two.get("/models/aliases")).json()["items"][0]["status"]
        assert [s["available"] for s in status] == [False, True]
        assert 0 < status[0]["cooling_down_seconds"] <= 60


async def test_the_cool_downs_are_read_from_redis_at_most_once_a_second(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    prefix = unique_prefix()
    try:
        async with make_routing(alias_yaml(a, b), redis=client, redis_prefix=prefix) as routing:
            assert await routing.ask("fast") == "from a"  # read once: nothing cools down
            await client.set(f"{prefix}:routing:cool:openai-compat/m", "1", px=30_000)  # another replica
            assert await routing.ask("fast") == "from a"  # not read again yet
            routing.clock.advance(SYNC_INTERVAL_S)
            assert await routing.ask("fast") == "from b"
            assert len(a.requests) == 2
    finally:
        await client.aclose()


async def test_without_redis_answering_each_process_counts_alone(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing there
    a.fail_status = 500
    try:
        yaml = alias_yaml(a, b, cooldown="{failures: 1, seconds: 30}")
        async with make_routing(yaml, redis=client) as routing:
            assert await routing.ask("fast") == "from b"  # Redis unreachable: the request still succeeds
            assert await routing.ask("fast") == "from b"
            assert len(a.requests) == 1  # cooled down in this process
    finally:
        await client.aclose()
