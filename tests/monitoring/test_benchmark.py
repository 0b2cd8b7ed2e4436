"""The LLM benchmark on the embedded model: waiting, in the background, bounds, ownership."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ailab.services.container import Services
from tests.conftest import bearer
from tests.monitoring.helpers import scrape, value

pytestmark = pytest.mark.slow
SMALL = {"prompt": "Say hi.", "iterations": 2, "max_tokens": 8}


async def default_model(client: httpx.AsyncClient) -> str:
    model: str = (await client.get("/health")).json()["model"]["id"]
    assert model.startswith("local/")
    return model


async def test_benchmark_waits_and_reports_every_iteration(client: httpx.AsyncClient) -> None:
    model = await default_model(client)
    response = await client.post("/benchmark/llm", params={"model_name": model, **SMALL})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "done"
    assert run["params"]["models"] == [model]
    [result] = run["results"]
    assert result["model"] == model
    assert len(result["iterations"]) == 2
    for it in result["iterations"]:
        assert it["ok"], it
        assert it["ttft_ms"] > 0
        assert it["total_ms"] >= it["ttft_ms"]
        assert 0 < it["completion_tokens"] <= 8
        assert it["tokens_per_second"] > 0
        assert it["tokens_per_second"] == pytest.approx(
            it["completion_tokens"] / (it["total_ms"] / 1000), rel=1e-2
        )
    agg = result["aggregate"]
    assert agg["succeeded"] == 2
    ttfts = sorted(it["ttft_ms"] for it in result["iterations"])
    assert agg["ttft_ms"]["mean"] == pytest.approx(sum(ttfts) / 2, abs=1e-3)
    assert agg["ttft_ms"]["p50"] == pytest.approx(sum(ttfts) / 2, abs=1e-3)
    assert agg["ttft_ms"]["p95"] == pytest.approx(ttfts[0] + 0.95 * (ttfts[1] - ttfts[0]), abs=1e-3)
    assert agg["tokens_per_second"]["mean"] > 0
    assert agg["total_time_s"] > 0

    # Stored and listed; the generations were also counted like chats.
    listed = (await client.get("/benchmark/runs")).json()["items"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert (await client.get(f"/benchmark/runs/{run['id']}")).json() == run
    text = await scrape(client)
    provider, name = model.split("/", 1)
    assert value(text, "gen_ai_server_time_to_first_token_seconds_count", provider=provider, model=name) == 2
    assert value(text, "ailab_llm_tokens_total", provider=provider, model=name, type="output") == sum(
        it["completion_tokens"] for it in result["iterations"]
    )


async def test_background_run_and_json_body(client: httpx.AsyncClient) -> None:
    model = await default_model(client)
    started = time.perf_counter()
    response = await client.post(
        "/benchmark/llm", json={"models": [model], "background": True, **SMALL, "concurrency": 2}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    # While it runs, the server answers other requests.
    assert (await client.get("/health/live")).status_code == 200
    deadline = time.monotonic() + 120
    while True:
        run = (await client.get(f"/benchmark/runs/{run_id}")).json()
        if run["status"] != "running" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)  # polling a background run's status, with a deadline
    assert run["status"] == "done", run
    assert run["params"]["concurrency"] == 2
    assert all(it["ttft_ms"] > 0 and it["tokens_per_second"] > 0 for it in run["results"][0]["iterations"])
    assert time.perf_counter() - started < 120


async def test_bounds_and_unknown_models_change_nothing(client: httpx.AsyncClient) -> None:
    bad = [
        {"iterations": 0},
        {"iterations": 101},
        {"concurrency": 17},
        {"concurrency": 0},
        {"max_tokens": 4097},
        {"max_tokens": 0},
    ]
    for params in bad:
        response = await client.post("/benchmark/llm", params=params)
        assert response.status_code == 422, (params, response.text)
        assert "detail" in response.json()
        response = await client.post("/benchmark/llm", json=params)
        assert response.status_code == 422, (params, response.text)
    response = await client.post("/benchmark/llm", params={"model_name": "nosuch/model", **SMALL})
    assert response.status_code == 404
    response = await client.post(
        "/benchmark/llm", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert (await client.get("/benchmark/runs")).json()["items"] == []


async def test_runs_of_other_users_are_invisible(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    model = await default_model(client)
    run = (await client.post("/benchmark/llm", params={"model_name": model, **SMALL, "iterations": 1})).json()
    await services.auth.create_user("eve", "eve-password-123")
    eve = await services.auth.authenticate(await services.auth.login("eve", "eve-password-123"))
    as_eve = bearer(services, eve)
    assert (await client.get(f"/benchmark/runs/{run['id']}", headers=as_eve)).status_code == 404
    assert (await client.get("/benchmark/runs", headers=as_eve)).json()["items"] == []
    assert (await client.get("/benchmark/runs/no-such-run")).status_code == 404
