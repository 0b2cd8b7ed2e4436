"""The expiring cache of the credentials: misses of one key load once, whoever waits or leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import event

from ailab.config import Settings
from ailab.expiring import MISSING, ExpiringCache
from ailab.services.container import Services
from tests.conftest import AppClientFactory
from tests.vault.conftest import openai_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A load that counts its calls and finishes when told to."""

    def __init__(self, valid_for: float = 5.0) -> None:
        self.calls = 0
        self.valid_for = valid_for
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return f"value {self.calls}", self.valid_for


async def test_concurrent_misses_load_once_and_then_hit_until_expiry() -> None:
    clock, source = Clock(), Source(valid_for=5.0)
    cache: ExpiringCache[str, str] = ExpiringCache(10, clock)
    waiting = [asyncio.ensure_future(cache.get("k", source)) for _ in range(16)]
    await source.started.wait()
    source.release.set()
    assert await asyncio.gather(*waiting) == ["value 1"] * 16
    assert source.calls == 1
    clock.now += 4.9
    assert await cache.get("k", source) == "value 1"  # still valid: no load
    clock.now += 0.2
    assert await cache.get("k", source) == "value 2"  # expired: loaded again
    assert source.calls == 2


async def test_cached_answers_a_valid_value_without_loading_and_missing_otherwise() -> None:
    clock = Clock()
    cache: ExpiringCache[str, str | None] = ExpiringCache(10, clock)
    assert cache.cached("k") is MISSING

    async def none_for_5s() -> tuple[str | None, float]:
        return None, 5.0

    assert await cache.get("k", none_for_5s) is None
    assert cache.cached("k") is None  # a cached None is a value, not a miss
    clock.now += 5.0
    assert cache.cached("k") is MISSING  # expired
    await cache.get("k", none_for_5s)
    cache.pop("k")
    assert cache.cached("k") is MISSING


async def test_a_failed_load_fails_every_waiter_and_caches_nothing() -> None:
    source = Source()
    source.error = RuntimeError("the database is down")
    cache: ExpiringCache[str, str] = ExpiringCache(10, Clock())
    waiting = [asyncio.ensure_future(cache.get("k", source)) for _ in range(3)]
    await source.started.wait()
    source.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [str(r) for r in results] == ["the database is down"] * 3
    source.error = None
    assert await cache.get("k", source) == "value 2"  # nothing was cached: loaded again


async def test_a_caller_that_leaves_cancels_neither_the_load_nor_the_others() -> None:
    source = Source()
    cache: ExpiringCache[str, str] = ExpiringCache(10, Clock())
    first = asyncio.ensure_future(cache.get("k", source))
    second = asyncio.ensure_future(cache.get("k", source))
    await source.started.wait()  # the load runs after both callers began waiting for it (tasks run in turn)
    first.cancel()
    source.release.set()
    assert await second == "value 1"
    assert first.cancelled()
    assert await cache.get("k", source) == "value 1"  # cached by the load the first one started
    assert source.calls == 1


@pytest.mark.parametrize("forget", ["clear", "pop"])
async def test_a_load_under_way_when_the_cache_is_cleared_is_not_cached_nor_joined(forget: str) -> None:
    source = Source()
    cache: ExpiringCache[str, str] = ExpiringCache(10, Clock())
    before = asyncio.ensure_future(cache.get("k", source))
    await source.started.wait()
    cache.clear() if forget == "clear" else cache.pop("k")  # a change: what is being read may be stale
    after = asyncio.ensure_future(cache.get("k", source))  # must not join the stale load
    source.release.set()
    assert await before == "value 1"
    assert await after == "value 2"
    assert await cache.get("k", source) == "value 2"  # the load started after the change was cached
    assert source.calls == 2


async def test_the_cache_is_bounded_and_a_value_valid_for_no_time_is_not_kept() -> None:
    clock = Clock()
    cache: ExpiringCache[int, str] = ExpiringCache(3, clock)

    async def load(value: str, valid_for: float) -> tuple[str, float]:
        return value, valid_for

    for key in range(3):
        await cache.get(key, lambda key=key: load(f"v{key}", 5.0))  # type: ignore[misc]
    await cache.get(3, lambda: load("v3", 5.0))  # full: the old ones are dropped
    assert await cache.get(0, lambda: load("reloaded", 5.0)) == "reloaded"
    assert await cache.get(4, lambda: load("expired already", 0.0)) == "expired already"
    assert await cache.get(4, lambda: load("loaded again", 5.0)) == "loaded again"


async def test_keys_missing_together_in_the_vault_are_read_once(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=any_database_url)
    async with app_client(settings) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        key = openai_key()
        r = await client.post("/api-keys", json={"service_name": "openai", "api_key": key})
        assert r.status_code == 200, r.text  # a change: the vault's cache is cleared
        reads: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if "FROM api_keys" in statement:
                reads.append(statement)

        engine = services.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            credentials = await asyncio.gather(*(services.vault.get("openai") for _ in range(16)))
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert {c.api_key if c else None for c in credentials} == {key}
        assert len(reads) == 1
