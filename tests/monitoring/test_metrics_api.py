"""GET /metrics, GET /metrics/prometheus and /health on the ASGI app."""

from __future__ import annotations

import asyncio
import time

import httpx

from ailab.metrics import MAX_MODEL_LABELS, Metrics
from ailab.services.container import Services
from tests.conftest import bearer
from tests.monitoring.helpers import family_names, samples, scrape, value

HTTP = "ailab_http_request_duration_seconds_count"


async def test_system_metrics_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0 <= body["cpu_usage_percent"] <= 100
    assert 0 < body["memory_usage_percent"] <= 100
    assert 0 < body["memory_used_mb"] <= body["memory_total_mb"]
    assert 0 < body["disk_used_gb"] <= body["disk_total_gb"]
    assert body["process_rss_mb"] > 10
    assert body["uptime_seconds"] > 0
    assert set(body["database_pool"]) == {"in_use", "idle"}
    assert body["gpus"] == []  # no GPU on this machine; NVML missing is not an error


async def test_metrics_need_an_admin(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    await services.auth.create_user("bob", "bob-password-123")
    bob = await services.auth.authenticate(await services.auth.login("bob", "bob-password-123"))
    for path in ("/metrics", "/metrics/prometheus"):
        assert (await client.get(path, headers={"Authorization": ""})).status_code == 401
        assert (await client.get(path, headers=bearer(services, bob))).status_code == 403
    summary = await client.get("/performance/summary", headers=bearer(services, bob))
    assert summary.status_code == 200  # aggregates only: any signed-in user


async def test_http_histogram_by_route_template(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert {
        "ailab_http_request_duration_seconds",
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_server_request_duration_seconds",
        "gen_ai_client_token_usage",
        "ailab_llm_tokens",
        "ailab_llm_errors",
        "ailab_route_attempts",
        "ailab_system_cpu_usage_ratio",
    } <= family_names(before)
    template = "/sessions/{session_id}"
    start = value(before, HTTP, route=template, method="GET", status_class="2xx")
    missing = value(before, HTTP, route=template, method="GET", status_class="4xx")
    ids = [(await client.post("/sessions", json={"title": f"s{i}"})).json()["id"] for i in range(3)]
    for sid in ids:
        assert (await client.get(f"/sessions/{sid}")).status_code == 200
    assert (await client.get("/sessions/does-not-exist")).status_code == 404

    after = await scrape(client)
    assert value(after, HTTP, route=template, method="GET", status_class="2xx") == start + 3
    assert value(after, HTTP, route=template, method="GET", status_class="4xx") == missing + 1
    assert value(after, HTTP, route="/sessions", method="POST", status_class="2xx") >= 3
    # Raw paths never become label values.
    assert not any(sid in s.labels.get("route", "") for s in samples(after) for sid in ids)
    # Process and pool gauges are there.
    assert value(after, "ailab_process_resident_memory_bytes") > 10 * 1024 * 1024
    assert any(s.name == "ailab_db_pool_connections" for s in samples(after))


async def test_health_has_model_and_metrics_and_does_not_block(client: httpx.AsyncClient) -> None:
    # Twenty concurrent /health: with a blocking CPU measurement (the old cpu_percent(interval=1))
    # this would take at least a second per call, one after the other.
    started = time.perf_counter()
    responses = await asyncio.gather(*(client.get("/health") for _ in range(20)))
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0, f"20 /health took {elapsed:.2f}s"
    body = responses[0].json()
    assert responses[0].status_code == 200, body
    assert body["database"] == "connected"
    assert body["model"]["id"].startswith("local/")
    assert body["model"]["ready"] is True
    assert body["metrics"]["uptime_seconds"] > 0
    assert set(body["metrics"]) >= {"cpu_usage_percent", "memory_usage_percent", "uptime_seconds"}


def test_label_values_are_bounded() -> None:
    metrics = Metrics()
    for i in range(MAX_MODEL_LABELS + 5):
        metrics.observe_generation(
            "openai-compat",
            f"m{i}",
            ok=True,
            duration_s=0.1,
            ttft_s=0.01,
            prompt_tokens=1,
            completion_tokens=1,
            error_kind=None,
        )
    metrics.observe_request("BREW", "/x", 418, 0.01)
    text = metrics.exposition().decode()
    models = {s.labels["model"] for s in samples(text) if s.name == "ailab_llm_requests_total"}
    assert len(models) == MAX_MODEL_LABELS + 1
    assert "other" in models
    assert value(text, "ailab_llm_requests_total", model="other") == 5
    assert value(text, HTTP, method="OTHER", route="/x", status_class="4xx") == 1
