"""Expensive work per user is capped, and what callers' model names fill stays bounded."""

from __future__ import annotations

import asyncio

import httpx

from ailab.config import Settings
from ailab.services.auth.accounts import Principal
from ailab.services.chat.service import MAX_CACHED_WINDOWS
from tests.conftest import AppClientFactory, bearer
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure


async def test_a_user_runs_at_most_two_benchmarks_at_once(
    upstream_client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    client = upstream_client
    upstream.slow = True  # every generation waits until released
    run = {"models": ["openai-compat/echo"], "iterations": 1, "background": True, "warmup": False}
    first = await client.post("/benchmark/llm", json=run)
    second = await client.post("/benchmark/llm", json=run)
    assert (first.status_code, second.status_code) == (202, 202)
    third = await client.post("/benchmark/llm", json=run)
    assert third.status_code == 429
    assert int(third.headers["Retry-After"]) >= 1
    assert "at most 2" in third.json()["detail"]
    waiting = await client.post(
        "/benchmark/llm", params={"model_name": "openai-compat/echo", "iterations": 1}
    )
    assert waiting.status_code == 429  # a waiting run counts too
    assert len((await client.get("/benchmark/runs")).json()["items"]) == 2  # nothing stored for those

    services = client.services  # type: ignore[attr-defined]
    user = await services.auth.create_user("bob", "a-password-for-bob")
    other = await client.post(
        "/benchmark/llm", json=run, headers=bearer(services, Principal(user.id, user.name, user.role))
    )
    assert other.status_code == 202  # the limit is per user

    upstream.release.set()
    await asyncio.gather(*services.benchmarks._tasks)  # the three runs end
    for started in (first, second):
        assert (await client.get(f"/benchmark/runs/{started.json()['id']}")).json()["status"] == "done"
    assert (await client.post("/benchmark/llm", json=run)).status_code == 202  # room again


async def test_caches_keyed_by_model_names_stay_bounded(
    app_client: AppClientFactory, settings: Settings
) -> None:
    async with (
        FakeOpenAI(any_key=True, models=[], echo=True) as anything,  # takes any model name
        app_client(configure(settings, openai_compat_base_url=anything.base_url)) as client,
    ):
        await chat_with_many_models(client)


async def chat_with_many_models(client: httpx.AsyncClient) -> None:
    for n in range(MAX_CACHED_WINDOWS + 40):
        body = {"message": "hi", "model": f"openai-compat/model-{n}", "pipeline": "direct"}
        assert (await client.post("/chat", json=body)).status_code == 200
    services = client.services  # type: ignore[attr-defined]
    assert len(services.chat._windows) <= MAX_CACHED_WINDOWS
    speeds = services.providers.speeds
    assert speeds.get("openai-compat/model-0") is None  # the oldest were let go
    assert speeds.get(f"openai-compat/model-{MAX_CACHED_WINDOWS + 39}") is not None
