"""The stored performance history: batched writes, retention and the summary's percentiles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from ailab.config import Settings
from ailab.db.repos import metrics as repo
from ailab.db.tables import PerformanceMetric, utcnow
from ailab.services.container import Services
from tests.conftest import AppClientFactory


def rows(
    kind: str, name: str, values: list[float], *, errors: int = 0, age: dt.timedelta = dt.timedelta()
) -> list[dict[str, object]]:
    now = utcnow() - age
    return [
        {"kind": kind, "name": name, "value": v, "ok": i >= errors, "extra": {}, "created_at": now}
        for i, v in enumerate(values)
    ]


async def count_rows(services: Services) -> int:
    async with services.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(PerformanceMetric))).scalar_one())


async def test_summary_percentiles_are_exact(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=any_database_url)) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        hundred = [float(v) for v in range(100, 0, -1)]  # 1..100, stored out of order
        samples = [
            *rows("http", "GET /things/{id}", hundred, errors=5),
            *rows("llm", "local/tiny", [10.0, 20.0, 30.0, 40.0]),
            *rows("function", "parse", [7.0]),
            # Outside a 24 h window: must not count.
            *rows("http", "GET /things/{id}", [100000.0] * 3, age=dt.timedelta(hours=30)),
        ]
        await services.db.run_write(repo.insert_samples, samples)

        response = await client.get("/performance/summary", params={"hours": 24})
        assert response.status_code == 200, response.text
        body = response.json()
        things = body["endpoints"]["GET /things/{id}"]
        # percentile_cont: value at position p * (n - 1) of the sorted values, linearly interpolated.
        assert things == {
            "count": 100,
            "errors": 5,
            "error_rate": 0.05,
            "p50": 50.5,
            "p95": 95.05,
            "p99": 99.01,
        }
        assert body["models"]["local/tiny"] == {
            "count": 4,
            "errors": 0,
            "error_rate": 0.0,
            "p50": 25.0,
            "p95": 38.5,
            "p99": 39.7,
        }
        assert body["functions"]["parse"]["p99"] == 7.0
        wide = (await client.get("/performance/summary", params={"hours": 48})).json()
        assert wide["endpoints"]["GET /things/{id}"]["count"] == 103


async def test_summary_rejects_bad_windows(client: httpx.AsyncClient) -> None:
    for hours in ("0", "-1", "abc", "100000"):
        response = await client.get("/performance/summary", params={"hours": hours})
        assert response.status_code == 422, hours
        assert "detail" in response.json()


def test_percentile_cont_definition() -> None:
    assert repo.percentile_cont([], 0.5) is None
    assert repo.percentile_cont([3.0], 0.99) == 3.0
    assert repo.percentile_cont([1.0, 2.0], 0.5) == 1.5


async def test_requests_are_written_in_batches(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    await services.monitor.history.flush()
    before = await count_rows(services)
    for _ in range(5):
        assert (await client.get("/sessions")).status_code == 200
    # Nothing is written on the request path: the samples wait in the buffer...
    assert await count_rows(services) == before
    assert len(services.monitor.history) >= 5
    # ...until the writer flushes them, all at once.
    assert await services.monitor.history.flush() >= 5
    assert len(services.monitor.history) == 0
    summary = (await client.get("/performance/summary")).json()
    assert summary["endpoints"]["GET /sessions"]["count"] == 5
    assert summary["endpoints"]["GET /sessions"]["errors"] == 0


async def test_buffer_is_bounded_and_retention_deletes_old_rows(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    history = services.monitor.history
    await history.flush()
    history.max_buffered = len(history) + 3
    for i in range(10):
        history.add("function", "burst", float(i), ok=True, extra={})
    assert len(history) == history.max_buffered
    assert history.dropped == 7
    await history.flush()

    retention_days = services.settings.metrics_retention_days
    samples = [
        *rows("http", "GET /old", [1.0, 2.0], age=dt.timedelta(days=retention_days + 1)),
        *rows("http", "GET /recent", [1.0], age=dt.timedelta(days=retention_days - 1)),
        # Imported v2 history is older than any retention, and is kept.
        *rows("legacy", "cpu_usage_percent", [18.5], age=dt.timedelta(days=retention_days + 500)),
    ]
    await services.db.run_write(repo.insert_samples, samples)
    assert await history.apply_retention() == 2
    async with services.db.read() as session:
        kept = (
            await session.scalars(select(PerformanceMetric).where(PerformanceMetric.kind == "legacy"))
        ).all()
    assert [row.value for row in kept] == [18.5]
    summary = (await client.get("/performance/summary", params={"hours": 24 * 366})).json()
    assert "GET /old" not in summary["endpoints"]
    assert summary["endpoints"]["GET /recent"]["count"] == 1


async def test_shutdown_flushes_the_buffer(settings: Settings, app_client: AppClientFactory) -> None:
    async with app_client(settings) as client:
        for _ in range(3):
            await client.get("/sessions")
    async with app_client(settings) as client:
        summary = (await client.get("/performance/summary")).json()
        assert summary["endpoints"]["GET /sessions"]["count"] == 3


async def test_samples_read_back_as_written_from_either_kind_of_time(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    """The writer's samples carry unix seconds, other callers datetimes; both read back alike."""
    async with app_client(make_settings(database_url=any_database_url)) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        at = dt.datetime(2026, 11, 27, 23, 59, 59, 123456, tzinfo=dt.UTC)
        extra = {"status": 503, "ttft_ms": None, "stream": True}
        written = [
            {
                "kind": "http",
                "name": "as-datetime",
                "value": 1.5,
                "ok": False,
                "extra": extra,
                "created_at": at,
            },
            {
                "kind": "http",
                "name": "as-seconds",
                "value": 2.5,
                "ok": True,
                "extra": {},
                "created_at": at.timestamp(),
            },
        ]
        assert await services.db.run_write(repo.insert_samples, written) == 2
        async with services.db.read() as session:
            stored = {
                m.name: m
                for m in await session.scalars(
                    select(PerformanceMetric).where(PerformanceMetric.name.in_(["as-datetime", "as-seconds"]))
                )
            }
    first, second = stored["as-datetime"], stored["as-seconds"]
    assert (first.value, first.ok, first.extra) == (1.5, False, extra)
    assert (second.value, second.ok, second.extra) == (2.5, True, {})
    assert first.created_at == at
    assert abs(second.created_at - at) <= dt.timedelta(microseconds=1)  # float seconds: a microsecond off
