"""Over time: ``GET /performance/history`` (the stored samples per time bucket) and ``GET /metrics/history``
(the sampler's ring of readings)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ailab.config import Settings
from ailab.db.repos import metrics as repo
from ailab.db.tables import utcnow
from ailab.services.container import Services
from ailab.services.monitoring.system import RECENT_SECONDS, SystemSampler
from ailab.services.monitoring.trends import bucket_layout
from tests.conftest import AppClientFactory, bearer


def sample(
    kind: str, name: str, value: float, at: dt.datetime, *, ok: bool = True, **extra: Any
) -> dict[str, Any]:
    return {"kind": kind, "name": name, "value": value, "ok": ok, "extra": extra, "created_at": at}


def series(body: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found = [s for s in body["series"] if s["kind"] == kind and s["name"] == name]
    assert len(found) == 1, [(s["kind"], s["name"]) for s in body["series"]]
    return found[0]


def start_of(at: dt.datetime, bucket_seconds: int) -> int:
    return int(at.timestamp()) // bucket_seconds * bucket_seconds


async def test_history_buckets_and_percentiles_are_exact(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=any_database_url)) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        now = utcnow()
        earlier = now - dt.timedelta(minutes=40)  # two 15-minute buckets before the newest
        route = "GET /things/{id}"
        samples = [
            # 1..100 ms, stored out of order, 5 errors: in the older bucket.
            *(sample("http", route, float(v), earlier, ok=v > 5) for v in range(100, 0, -1)),
            sample("http", route, 10.0, now),
            sample("http", route, 20.0, now),
            # A model: durations 1, 2 and 4 s for 10 tokens each (10, 5 and 2.5 tokens/s), and a failed
            # generation whose speed must not count (it would be 1,000 tokens/s).
            sample("llm", "local/tiny", 1000.0, now, ttft_ms=100.0, completion_tokens=10),
            sample("llm", "local/tiny", 2000.0, now, ttft_ms=200.0, completion_tokens=10),
            sample("llm", "local/tiny", 4000.0, now, ttft_ms=300.0, completion_tokens=10),
            sample("llm", "local/tiny", 100.0, now, ok=False, ttft_ms=None, completion_tokens=100),
            # Out of the hour, or of another kind: not in any series.
            sample("http", route, 99999.0, now - dt.timedelta(hours=2)),
            sample("function", "parse", 7.0, now),
            sample("legacy", "cpu_usage_percent", 18.5, now),
        ]
        await services.db.run_write(repo.insert_samples, samples)

        response = await client.get("/performance/history", params={"hours": 1, "buckets": 4})
        assert response.status_code == 200, response.text
        body = response.json()
        size = body["bucket_seconds"]
        assert (body["hours"], body["buckets"], size, body["truncated"]) == (1, 4, 900, False)
        assert dt.datetime.fromisoformat(body["since"]).timestamp() % size == 0
        assert {s["kind"] for s in body["series"]} == {"endpoint", "model"}
        assert not any(s["name"] in ("parse", "cpu_usage_percent") for s in body["series"])

        things = series(body, "endpoint", route)
        assert things["count"] == 102
        assert things["points"] == [
            # percentile_cont: the value at position p * (n - 1) of the sorted values, interpolated.
            {
                "t": start_of(earlier, size),
                "count": 100,
                "errors": 5,
                "p50_ms": 50.5,
                "p95_ms": 95.05,
                "p99_ms": 99.01,
                "ttft_ms": None,
                "tokens_per_second": None,
            },
            {
                "t": start_of(now, size),
                "count": 2,
                "errors": 0,
                "p50_ms": 15.0,
                "p95_ms": 19.5,
                "p99_ms": 19.9,
                "ttft_ms": None,
                "tokens_per_second": None,
            },
        ]
        tiny = series(body, "model", "local/tiny")
        assert tiny["points"] == [
            {
                "t": start_of(now, size),
                "count": 4,
                "errors": 1,
                "p50_ms": 1500.0,
                "p95_ms": 3700.0,
                "p99_ms": 3940.0,
                "ttft_ms": 200.0,
                "tokens_per_second": 5.0,
            }
        ]

        # Finer buckets over a longer window: the same samples, in buckets of 6 minutes.
        fine = (await client.get("/performance/history", params={"hours": 24, "buckets": 240})).json()
        assert fine["bucket_seconds"] == 360
        points = series(fine, "endpoint", route)["points"]
        two_hours_ago = now - dt.timedelta(hours=2)  # out of the hour, in the day
        assert [p["t"] for p in points] == [start_of(at, 360) for at in (two_hours_ago, earlier, now)]
        assert [p["count"] for p in points] == [1, 100, 2]


async def test_a_request_just_made_is_in_the_history(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.get("/sessions")).status_code == 200
    # Still in the monitor's buffer: the history writes it first, as the summary does.
    body = (await client.get("/performance/history", params={"hours": 1})).json()
    points = series(body, "endpoint", "GET /sessions")["points"]
    assert sum(p["count"] for p in points) == 3
    assert points[-1]["t"] >= utcnow().timestamp() - body["bucket_seconds"] - 1


async def test_history_rejects_bad_parameters(client: httpx.AsyncClient) -> None:
    bad = [
        {"hours": "0"},
        {"hours": "721"},
        {"hours": "1.5"},
        {"hours": "abc"},
        {"buckets": "0"},
        {"buckets": "501"},
        {"buckets": "many"},
    ]
    for params in bad:
        response = await client.get("/performance/history", params=params)
        assert response.status_code == 422, params
        assert "detail" in response.json()
    edges = [{"hours": "1", "buckets": "1"}, {"hours": "720", "buckets": "500"}]
    for params in edges:
        assert (await client.get("/performance/history", params=params)).status_code == 200, params


async def test_sqlite_reads_a_bounded_number_of_rows(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    now = utcnow()
    older, newer = now - dt.timedelta(minutes=20), now
    samples = [
        *(sample("http", "GET /x", float(v), older) for v in range(10)),
        *(sample("http", "GET /x", float(v), newer) for v in range(5)),
    ]
    await services.db.run_write(repo.insert_samples, samples)
    size = 600
    since = now - dt.timedelta(hours=1)

    async def read(max_rows: int) -> tuple[list[tuple[int, int]], bool]:
        async with services.db.read() as session:
            window = await repo.summarize_buckets(session, since, size, ("http",), max_rows=max_rows)
        return [(b.start, b.count) for b in window.buckets if b.name == "GET /x"], window.truncated

    both = [(start_of(older, size), 10), (start_of(newer, size), 5)]
    assert await read(100) == (both, False)
    assert await read(15) == (both, False)
    # Cut inside the older bucket, or right after the newer one: the incomplete bucket is left out.
    assert await read(9) == ([both[1]], True)
    assert await read(5) == ([both[1]], True)
    assert await read(3) == ([], True)


async def test_system_history_is_the_samplers_ring(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    first = await client.get("/metrics/history")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["interval_seconds"] == services.settings.system_sample_seconds
    assert body["window_seconds"] == RECENT_SECONDS
    assert len(body["samples"]) >= 1  # the sampler reads the machine as the app starts
    taken = [(await services.monitor.sampler.sample()).sampled_at for _ in range(2)]
    samples = (await client.get("/metrics/history")).json()["samples"]
    times = [s["t"] for s in samples]
    assert len(samples) >= len(body["samples"]) + 2  # (the background sampler may add one meanwhile)
    assert set(taken) <= set(times) and times == sorted(times)
    for reading in samples:
        assert set(reading) == {"t", "cpu_usage_percent", "memory_usage_percent", "gpus"}
        assert 0 <= reading["cpu_usage_percent"] <= 100
        assert 0 < reading["memory_usage_percent"] <= 100
        assert reading["gpus"] == []  # no GPU on this machine
    latest = (await client.get("/metrics")).json()
    assert latest["sampled_at"] >= times[-1]  # /metrics serves the newest reading of the same ring


async def test_the_ring_keeps_ten_minutes(tmp_path: Path) -> None:
    sampler = SystemSampler(tmp_path, interval=RECENT_SECONDS / 3)
    for _ in range(5):
        await sampler.sample()
    assert len(sampler.recent) == 3
    assert sampler.recent[-1] is sampler.latest
    sampler.nvml.close()


async def test_who_may_read_the_history(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    await services.auth.create_user("bob", "bob-password-123")
    bob = await services.auth.authenticate(await services.auth.login("bob", "bob-password-123"))
    for path in ("/metrics/history", "/performance/history"):
        assert (await client.get(path, headers={"Authorization": ""})).status_code == 401, path
    # The machine is for admins; aggregates of latency, as /performance/summary, for any signed-in user.
    assert (await client.get("/metrics/history", headers=bearer(services, bob))).status_code == 403
    assert (await client.get("/performance/history", headers=bearer(services, bob))).status_code == 200


def test_buckets_line_up_with_unix_time() -> None:
    assert bucket_layout(1_000_000.0, 1, 4) == (900, 1_000_000 // 900 * 900 - 3 * 900)
    assert bucket_layout(1_000_000.0, 720, 500)[0] == 5184  # 30 days in 500 buckets
    assert bucket_layout(1_000_000.0, 1, 500)[0] == 8  # ceil(3600 / 500)
    size, first = bucket_layout(1_000_123.4, 24, 48)
    assert size == 1800 and first % size == 0 and 1_000_123.4 - first < 48 * size
