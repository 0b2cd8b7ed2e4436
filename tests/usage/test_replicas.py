"""Two app instances on one database enforce one budget: through Redis (``AILAB_REDIS_URL``), or through
the database's stored counts without it. Each sees the other's use one sync late; the tests sync
explicitly (the background flush runs every second in production)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ailab.config import Settings
from ailab.services.usage.periods import bounds
from tests.conftest import AppClientFactory
from tests.support.redis import unique_prefix
from tests.usage.conftest import Member, add_user, chat_body


async def _sync(*clients: httpx.AsyncClient) -> None:
    for client in clients:
        await client.services.usage.sync(limits=True)  # type: ignore[attr-defined]


async def _chat(client: httpx.AsyncClient, member: Member) -> int:
    return (await client.post("/chat", json=chat_body(), headers=member.headers)).status_code


async def test_two_replicas_share_a_budget_through_redis(
    usage_settings: Callable[..., Settings], app_client: AppClientFactory, redis_url: str
) -> None:
    prefix = unique_prefix()
    settings = usage_settings(redis_url=redis_url, redis_prefix=prefix)
    async with app_client(settings) as a, app_client(settings) as b:
        alice = await add_user(a, "alice")
        assert (await a.put("/usage/limits/user/alice/day", json={"max_requests": 3})).status_code == 200
        await _sync(b)  # B reads the new budget (within 5 s on its own)

        assert [await _chat(a, alice), await _chat(a, alice), await _chat(b, alice)] == [200, 200, 200]
        # Neither replica alone has seen three requests: each lets one more through until they sync.
        await _sync(a, b, a)
        assert [await _chat(a, alice), await _chat(b, alice)] == [429, 429]

        start, _ = bounds("day", a.services.usage.clock())  # type: ignore[attr-defined]
        shared = await a.services.redis.hgetall(f"{prefix}:usage:user:{alice.id}:day:{start}")  # type: ignore[attr-defined]
        assert int(shared[b"requests"]) == 3 and int(shared[b"tokens"]) > 0

        # Lifting the budget on B lifts it on A at A's next reading of the budgets.
        assert (await b.delete("/usage/limits/user/alice/day")).status_code == 204
        await _sync(a)
        assert await _chat(a, alice) == 200


async def test_two_processes_share_a_budget_through_the_database_without_redis(
    usage_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    settings = usage_settings()
    async with app_client(settings) as a, app_client(settings) as b:
        alice = await add_user(a, "alice")
        assert (await b.put("/usage/limits/user/alice/hour", json={"max_requests": 2})).status_code == 200
        await _sync(a)
        assert [await _chat(a, alice), await _chat(b, alice)] == [200, 200]
        await _sync(a, b)  # A writes its count, B writes its and reads both, then A reads both
        await _sync(a)
        assert [await _chat(a, alice), await _chat(b, alice)] == [429, 429]
