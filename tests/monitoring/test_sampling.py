"""The history under load: a weighted uniform sample per route, model and outcome, summarized alike on
both databases."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from ailab.config import Settings
from ailab.db.repos import metrics as repo
from ailab.db.tables import PerformanceMetric, utcnow
from ailab.services.container import Services
from tests.conftest import AppClientFactory
from tests.monitoring.test_trends import sample


def repeated(pairs: list[tuple[float, int]]) -> list[float]:
    return sorted(value for value, times in pairs for _ in range(times))


def test_weighted_percentile_is_percentile_cont_of_the_repeated_values() -> None:
    draw = random.Random(7)
    for _ in range(200):
        pairs = sorted((float(draw.randint(0, 50)), draw.randint(1, 6)) for _ in range(draw.randint(1, 12)))
        for fraction in (0.0, 0.1, 0.5, 0.95, 0.99, 1.0):
            expected = repo.percentile_cont(repeated(pairs), fraction)
            got = repo.weighted_percentile([(v, float(w)) for v, w in pairs], fraction)
            assert got is not None and expected is not None
            assert abs(got - expected) < 1e-9, (pairs, fraction)
    assert repo.weighted_percentile([], 0.5) is None
    # Weights that are not whole: the value covering the position, interpolated past its last whole one.
    assert repo.weighted_percentile([(10.0, 1.5), (20.0, 1.5)], 0.5) == 15.0
    assert repo.weighted_percentile([(10.0, 2.5), (20.0, 2.5)], 0.25) == 10.0


def weighted(
    kind: str, name: str, at: dt.datetime, rows: list[tuple[float, float, bool]]
) -> list[dict[str, Any]]:
    """``(value, weight, ok)`` rows as the trends tests' samples, each with its weight."""
    return [{**sample(kind, name, v, at, ok=ok), "weight": w} for v, w, ok in rows]


async def test_weights_count_and_weigh_percentiles_on_either_database(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=any_database_url)) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        now = utcnow()
        # Whole weights: the same figures as the values written out that many times.
        whole = [(5.0, 3.0, True), (1.0, 1.0, True), (9.0, 2.0, True), (2.0, 4.0, False), (7.0, 1.0, True)]
        # Weights of a sampled batch (1,000 seen, 3 kept): only the sums must come out whole.
        sampled = [(30.0, 1000 / 3, True), (10.0, 1000 / 3, True), (20.0, 1000 / 3, True)]
        plain = [(float(v), 1.0, True) for v in range(1, 11)]
        await services.db.run_write(
            repo.insert_samples,
            [
                *weighted("http", "GET /whole", now, whole),
                *weighted("http", "GET /sampled", now, sampled),
                *weighted("llm", "local/plain", now, plain),
            ],
        )
        body = (await client.get("/performance/summary", params={"hours": 1})).json()
        history = (await client.get("/performance/history", params={"hours": 1, "buckets": 1})).json()

    def point(name: str) -> dict[str, Any]:
        (series,) = [s for s in history["series"] if s["name"] == name]
        (only,) = series["points"]
        return dict(only)

    out = repeated([(v, int(w)) for v, w, _ in whole])
    expected = [round(repo.percentile_cont(out, p) or 0, 3) for p in (0.5, 0.95, 0.99)]
    assert body["endpoints"]["GET /whole"] == {
        "count": 11,
        "errors": 4,
        "error_rate": round(4 / 11, 6),
        "p50": expected[0],
        "p95": expected[1],
        "p99": expected[2],
    }
    assert [point("GET /whole")[k] for k in ("count", "errors", "p50_ms", "p95_ms", "p99_ms")] == [
        11,
        4,
        *expected,
    ]

    ordered = sorted((v, w) for v, w, _ in sampled)
    estimate = [round(repo.weighted_percentile(ordered, p) or 0, 3) for p in (0.5, 0.95, 0.99)]
    assert estimate[0] == 20.0 and estimate[2] == 30.0
    summary = body["endpoints"]["GET /sampled"]
    assert (summary["count"], summary["errors"]) == (1000, 0)
    assert [summary[k] for k in ("p50", "p95", "p99")] == estimate
    assert [point("GET /sampled")[k] for k in ("count", "p50_ms", "p95_ms", "p99_ms")] == [1000, *estimate]

    # Weight 1 everywhere: PostgreSQL's own percentile_cont's figures.
    assert body["models"]["local/plain"]["p95"] == 9.55
    assert point("local/plain")["p50_ms"] == 5.5


async def test_a_busy_route_keeps_a_sample_whose_weights_add_up(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=database_url, metrics_samples_per_second=5, metrics_flush_seconds=2)
    async with app_client(settings) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        history = services.monitor.history
        await history.flush()
        assert history.sample_size == 10
        for i in range(1000):
            history.add("http", "POST /busy", float(i), ok=True, extra={"status": 200})
        for i in range(30):
            history.add("http", "POST /busy", 5000.0 + i, ok=False, extra={"status": 502})
        for i in range(3):
            history.add("http", "GET /quiet", float(i), ok=True, extra={"status": 200})
        assert len(history) == 10 + 10 + 3  # what will be written, not what was seen
        assert await history.flush() == 23
        async with services.db.read() as session:
            rows = (
                await session.scalars(
                    select(PerformanceMetric).where(PerformanceMetric.name.in_(["POST /busy", "GET /quiet"]))
                )
            ).all()
        kept = {(row.name, row.ok): [] for row in rows}
        for row in rows:
            kept[(row.name, row.ok)].append(row)
        assert {key: len(found) for key, found in kept.items()} == {
            ("POST /busy", True): 10,
            ("POST /busy", False): 10,
            ("GET /quiet", True): 3,
        }
        assert {row.weight for row in kept[("POST /busy", True)]} == {100.0}
        assert {row.weight for row in kept[("POST /busy", False)]} == {3.0}
        assert {row.weight for row in kept[("GET /quiet", True)]} == {1.0}
        successes = [row.value for row in kept[("POST /busy", True)]]
        assert len(set(successes)) == 10 and all(0 <= v < 1000 for v in successes)
        assert all(row.extra == {"status": 502} for row in kept[("POST /busy", False)])

        summary = (await client.get("/performance/summary")).json()["endpoints"]
        assert (summary["POST /busy"]["count"], summary["POST /busy"]["errors"]) == (1030, 30)
        assert summary["GET /quiet"]["count"] == 3

        # The next flush starts afresh: below the size again, every observation is a row of weight 1.
        await history.flush()  # (the summary's own request)
        history.add("http", "POST /busy", 1.0, ok=True, extra={})
        assert await history.flush() == 1
        summary = (await client.get("/performance/summary")).json()["endpoints"]
        assert summary["POST /busy"]["count"] == 1031


async def test_the_sample_is_uniform(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    """Every observation is kept with the same chance: the kept values' mean is the seen values' mean."""
    settings = make_settings(
        database_url=database_url, metrics_samples_per_second=50, metrics_flush_seconds=2
    )
    async with app_client(settings) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        history = services.monitor.history
        means = []
        for round_ in range(40):
            name = f"uniform {round_}"
            for i in range(5000):
                history.add("function", name, float(i), ok=True, extra={})
            assert await history.flush() == 100
            async with services.db.read() as session:
                kept = (
                    await session.scalars(
                        select(PerformanceMetric.value).where(PerformanceMetric.name == name)
                    )
                ).all()
            means.append(sum(v or 0.0 for v in kept) / len(kept))
    average = sum(means) / len(means)
    # Each mean of 100 of 0..4999 has a standard error of ~144; forty of them, ~23. Early or late
    # observations favoured would move it by thousands.
    assert 2499.5 - 250 < average < 2499.5 + 250
    assert min(means) < 2499.5 < max(means)


async def test_a_name_first_seen_while_the_buffer_is_full_is_dropped_and_counted(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=database_url)) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        history = services.monitor.history
        await history.flush()
        history.max_buffered = 0
        history.add("function", "never stored", 1.0, ok=True, extra={})
        assert (len(history), history.dropped) == (0, 1)
        assert await history.flush() == 0  # nothing to weigh: the flush goes on
        history.max_buffered = 10
        history.add("function", "stored", 2.0, ok=True, extra={})
        assert await history.flush() == 1
        async with services.db.read() as session:
            names = set(await session.scalars(select(PerformanceMetric.name)))
        assert "stored" in names and "never stored" not in names
