"""Queries on the performance history (``performance_metrics``) and on benchmark runs.

Percentiles use one definition on both databases: PostgreSQL's ``percentile_cont`` (linear
interpolation between the two nearest ranks: for sorted values ``v[0..n-1]`` and fraction ``p``, the
value at position ``p * (n - 1)``). On PostgreSQL the database computes them; SQLite has no such
aggregate, so :func:`summarize_window` reads the window's values in order and :func:`percentile_cont`
does the same arithmetic in Python.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Float, Table, case, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.tables import BenchmarkRun, PerformanceMetric

PERCENTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """Aggregates of one (kind, name) group of samples."""

    kind: str
    name: str
    count: int
    errors: int
    p50: float | None
    p95: float | None
    p99: float | None


def percentile_cont(sorted_values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation at position ``fraction * (n - 1)``."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * weight


METRICS = cast(Table, PerformanceMetric.__table__)


def insert_samples(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert many samples (dicts of PerformanceMetric columns) in one statement.

    A transaction function (the background flush runs it through ``Database.run_write``); a Core
    executemany, since the ORM's bulk path costs several times more CPU per row.
    """
    if not rows:
        return 0
    conn.execute(insert(METRICS), list(rows))
    return len(rows)


async def delete_before(db: AsyncSession, cutoff: dt.datetime, kinds: Sequence[str]) -> int:
    """Delete samples of ``kinds`` older than ``cutoff``; returns how many."""
    query = delete(METRICS).where(METRICS.c.created_at < cutoff, METRICS.c.kind.in_(kinds))
    result: Any = await db.execute(query)
    return int(result.rowcount or 0)


async def summarize_window(db: AsyncSession, since: dt.datetime) -> list[GroupSummary]:
    """Count, errors and p50/p95/p99 of ``value`` per (kind, name) for samples since ``since``."""
    window = PerformanceMetric.created_at >= since
    errors = func.sum(case((PerformanceMetric.ok.is_(False), 1), else_=0))
    if db.get_bind().dialect.name == "postgresql":
        pcts = [
            func.percentile_cont(p).within_group(PerformanceMetric.value.cast(Float)) for p in PERCENTILES
        ]
        query = (
            select(PerformanceMetric.kind, PerformanceMetric.name, func.count(), errors, *pcts)
            .where(window)
            .group_by(PerformanceMetric.kind, PerformanceMetric.name)
            .order_by(PerformanceMetric.kind, PerformanceMetric.name)
        )
        return [
            GroupSummary(kind, name, int(count), int(errs or 0), *(_float(v) for v in (p50, p95, p99)))
            for kind, name, count, errs, p50, p95, p99 in (await db.execute(query)).all()
        ]
    counts_query = (
        select(PerformanceMetric.kind, PerformanceMetric.name, func.count(), errors)
        .where(window)
        .group_by(PerformanceMetric.kind, PerformanceMetric.name)
    )
    counts = {(k, n): (int(c), int(e or 0)) for k, n, c, e in (await db.execute(counts_query)).all()}
    values_query = (
        select(PerformanceMetric.kind, PerformanceMetric.name, PerformanceMetric.value)
        .where(window, PerformanceMetric.value.is_not(None))
        .order_by(PerformanceMetric.kind, PerformanceMetric.name, PerformanceMetric.value)
    )
    grouped: dict[tuple[str, str], list[float]] = {}
    for kind, name, value in await db.execute(values_query):
        grouped.setdefault((kind, name), []).append(float(value or 0.0))  # NULLs are filtered out
    summaries = []
    for key in sorted(counts):
        ordered = grouped.get(key, [])
        count, errs = counts[key]
        p50, p95, p99 = (percentile_cont(ordered, p) for p in PERCENTILES)
        summaries.append(GroupSummary(key[0], key[1], count, errs, p50, p95, p99))
    return summaries


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# Benchmark runs ------------------------------------------------------------------------------------


async def create_run(
    db: AsyncSession, *, run_id: str, owner_id: str | None, params: dict[str, Any]
) -> BenchmarkRun:
    """Store a new run in state ``running``."""
    row = BenchmarkRun(id=run_id, owner_id=owner_id, status="running", params=params, results={})
    db.add(row)
    await db.flush()
    return row


async def finish_run(
    db: AsyncSession,
    run_id: str,
    *,
    status: str,
    results: dict[str, Any],
    error: str | None,
    finished_at: dt.datetime,
) -> None:
    """Record the outcome of a run."""
    row = await db.get(BenchmarkRun, run_id)
    if row is None:
        return
    row.status, row.results, row.error, row.finished_at = status, results, error, finished_at
    await db.flush()


def _visible(owner_id: str | None, include_ownerless: bool) -> Any:
    mine = BenchmarkRun.owner_id == owner_id
    return or_(mine, BenchmarkRun.owner_id.is_(None)) if include_ownerless else mine


async def get_run(
    db: AsyncSession, run_id: str, owner_id: str | None, *, include_ownerless: bool = False
) -> BenchmarkRun | None:
    """The run with this id if ``owner_id`` may see it."""
    query = select(BenchmarkRun).where(BenchmarkRun.id == run_id, _visible(owner_id, include_ownerless))
    return (await db.scalars(query)).one_or_none()


async def list_runs(
    db: AsyncSession, owner_id: str | None, *, limit: int, include_ownerless: bool = False
) -> Sequence[BenchmarkRun]:
    """The newest ``limit`` runs ``owner_id`` may see."""
    query = (
        select(BenchmarkRun)
        .where(_visible(owner_id, include_ownerless))
        .order_by(BenchmarkRun.created_at.desc(), BenchmarkRun.id.desc())
        .limit(limit)
    )
    return (await db.scalars(query)).all()
