"""Queries on the performance history (``performance_metrics``) and on benchmark runs.

Percentiles use one definition on both databases: PostgreSQL's ``percentile_cont`` (linear
interpolation between the two nearest ranks: for sorted values ``v[0..n-1]`` and fraction ``p``, the
value at position ``p * (n - 1)``). On PostgreSQL the database computes them; SQLite has no such
aggregate, so :func:`summarize_window` reads the window's values in order and :func:`percentile_cont`
does the same arithmetic in Python.

:func:`summarize_buckets` gives the same figures per time bucket (the dashboard's charts over time). A
bucket starts at a multiple of its length in unix seconds (UTC), so the buckets of two reads a minute
apart line up. PostgreSQL aggregates in one ``GROUP BY``; on SQLite the samples of one kind are streamed
newest first through the ``(kind, created_at)`` index, one bucket held in memory at a time, and at most
``max_rows`` of them are read: past that the older buckets are left out and the answer says so.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Table,
    and_,
    case,
    delete,
    extract,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.tables import BenchmarkRun, PerformanceMetric, utcnow

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


_SQLITE_INSERT = (
    "INSERT INTO performance_metrics (kind, name, value, ok, session_id, extra, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def insert_samples(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert many samples (dicts of PerformanceMetric columns; ``created_at`` a datetime or unix seconds)
    in one statement.

    A transaction function (the background flush runs it through ``Database.run_write``). The server
    writes two samples per request, on SQLite's one writer thread beside the requests' own writes: there
    the rows go to the driver as SQLite stores them (naive UTC text, JSON text, 0/1), since SQLAlchemy's
    per-value conversions cost as much as the insert itself; PostgreSQL gets a Core executemany.
    """
    if not rows:
        return 0
    if conn.dialect.name != "sqlite":
        conn.execute(insert(METRICS), [{**row, "created_at": _aware(row.get("created_at"))} for row in rows])
        return len(rows)
    clock = _SQLiteClock()
    conn.exec_driver_sql(
        _SQLITE_INSERT,
        [
            (
                row["kind"],
                row["name"],
                row.get("value"),
                1 if row.get("ok", True) else 0,
                row.get("session_id"),
                orjson.dumps(row.get("extra") or {}).decode(),
                clock.text(row.get("created_at")),
            )
            for row in rows
        ],
    )
    return len(rows)


def _aware(value: dt.datetime | float | None) -> dt.datetime:
    if value is None:
        return utcnow()
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromtimestamp(value, dt.UTC)


class _SQLiteClock:
    """Timestamps as SQLAlchemy stores them in SQLite (``UTCDateTime``: naive UTC text with microseconds);
    a batch's samples mostly share their second, whose text is made once."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def text(self, value: dt.datetime | float | None) -> str:
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value.isoformat(sep=" ", timespec="microseconds")
        at = time.time() if value is None else value
        second = int(at)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((at - second) * 1e6):06d}"


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


# Per time bucket ------------------------------------------------------------------------------------

STREAM_PARTITION = 5_000


@dataclass(frozen=True, slots=True)
class BucketSummary:
    """Aggregates of the samples of one (kind, name) in one time bucket (milliseconds).

    ``ttft_p50``: median of the samples' ``extra.ttft_ms`` (generations that got a first token);
    ``tokens_per_second_p50``: median of ``completion_tokens / duration`` over successful generations
    that produced tokens (the definition of the benchmark and of ``ailab_llm_output_tokens_per_second``).
    """

    kind: str
    name: str
    start: int  # unix seconds
    count: int
    errors: int
    p50: float | None
    p95: float | None
    p99: float | None
    ttft_p50: float | None = None
    tokens_per_second_p50: float | None = None


@dataclass(frozen=True, slots=True)
class BucketedWindow:
    """What :func:`summarize_buckets` read: the buckets, and whether ``max_rows`` cut older ones off."""

    buckets: list[BucketSummary]
    truncated: bool = False


@dataclass(slots=True)
class _Group:
    count: int = 0
    errors: int = 0
    values: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)

    def summary(self, kind: str, name: str, start: int) -> BucketSummary:
        self.values.sort()
        self.ttfts.sort()
        self.speeds.sort()
        p50, p95, p99 = (percentile_cont(self.values, p) for p in PERCENTILES)
        return BucketSummary(
            kind,
            name,
            start,
            self.count,
            self.errors,
            p50,
            p95,
            p99,
            percentile_cont(self.ttfts, 0.5),
            percentile_cont(self.speeds, 0.5),
        )


def _tokens_per_second(ok: bool, value: float | None, completion_tokens: float | None) -> float | None:
    if not ok or not value or value <= 0 or not completion_tokens or completion_tokens <= 0:
        return None
    return completion_tokens * 1000.0 / value


async def summarize_buckets(
    db: AsyncSession, since: dt.datetime, bucket_seconds: int, kinds: Sequence[str], *, max_rows: int
) -> BucketedWindow:
    """Count, errors, p50/p95/p99 of ``value`` (and for ``llm`` samples the median TTFT and tokens/s)
    per (kind, name, bucket of ``bucket_seconds``) for the samples of ``kinds`` since ``since``.

    Sorted by kind, name and bucket. ``max_rows`` bounds the rows read per kind on SQLite (see the module
    docstring); PostgreSQL computes everything in the database and reads no rows.
    """
    if bucket_seconds < 1:
        raise ValueError("bucket_seconds must be at least 1")
    if db.get_bind().dialect.name == "postgresql":
        return BucketedWindow(await _buckets_in_sql(db, since, bucket_seconds, kinds))
    found: list[BucketSummary] = []
    truncated = False
    for kind in kinds:
        kind_buckets, cut = await _buckets_streamed(db, since, bucket_seconds, kind, max_rows)
        found += kind_buckets
        truncated = truncated or cut
    found.sort(key=lambda b: (b.kind, b.name, b.start))
    return BucketedWindow(found, truncated)


def _llm_columns() -> tuple[Any, Any]:
    extra = PerformanceMetric.extra
    return extra["ttft_ms"].as_float(), extra["completion_tokens"].as_float()


async def _buckets_in_sql(
    db: AsyncSession, since: dt.datetime, bucket_seconds: int, kinds: Sequence[str]
) -> list[BucketSummary]:
    size: Any = literal_column(str(int(bucket_seconds)))  # an int, inlined: GROUP BY must repeat it verbatim
    epoch = extract("epoch", PerformanceMetric.created_at)
    bucket = (func.floor(epoch / size) * size).cast(BigInteger).label("bucket")
    value = PerformanceMetric.value.cast(Float)
    ttft, completion = _llm_columns()
    speed = case(
        (
            and_(PerformanceMetric.ok.is_(True), completion > 0, PerformanceMetric.value > 0),
            completion * 1000.0 / PerformanceMetric.value,
        ),
        else_=None,
    )
    errors = func.sum(case((PerformanceMetric.ok.is_(False), 1), else_=0))
    query = (
        select(
            PerformanceMetric.kind,
            PerformanceMetric.name,
            bucket,
            func.count(),
            errors,
            *(func.percentile_cont(p).within_group(value) for p in PERCENTILES),
            func.percentile_cont(0.5).within_group(ttft),
            func.percentile_cont(0.5).within_group(speed),
        )
        .where(PerformanceMetric.created_at >= since, PerformanceMetric.kind.in_(kinds))
        .group_by(PerformanceMetric.kind, PerformanceMetric.name, bucket)
        .order_by(PerformanceMetric.kind, PerformanceMetric.name, bucket)
    )
    return [
        BucketSummary(
            kind,
            name,
            int(start),
            int(count),
            int(errs or 0),
            *(_float(v) for v in (p50, p95, p99, ttft_p50, speed_p50)),
        )
        for kind, name, start, count, errs, p50, p95, p99, ttft_p50, speed_p50 in (
            await db.execute(query)
        ).all()
    ]


async def _buckets_streamed(
    db: AsyncSession, since: dt.datetime, bucket_seconds: int, kind: str, max_rows: int
) -> tuple[list[BucketSummary], bool]:
    llm = kind == "llm"
    columns: list[Any] = [
        PerformanceMetric.name,
        PerformanceMetric.created_at,
        PerformanceMetric.value,
        PerformanceMetric.ok,
    ]
    if llm:
        columns += _llm_columns()
    query = (
        select(*columns)
        .where(PerformanceMetric.kind == kind, PerformanceMetric.created_at >= since)
        .order_by(PerformanceMetric.created_at.desc())
        .limit(max_rows + 1)
    )
    found: list[BucketSummary] = []
    groups: dict[str, _Group] = {}
    current: int | None = None
    read = 0
    truncated = False
    result = await db.stream(query.execution_options(yield_per=STREAM_PARTITION))
    async for partition in result.partitions():
        for row in partition:
            start = int(row[1].timestamp()) // bucket_seconds * bucket_seconds
            if start != current:
                if current is not None:
                    found += [g.summary(kind, name, current) for name, g in groups.items()]
                groups, current = {}, start
            read += 1
            if read > max_rows:  # the bucket this row starts (or continues) is incomplete: leave it out
                truncated = True
                groups = {}
                break
            group = groups.get(row[0])
            if group is None:
                group = groups[row[0]] = _Group()
            group.count += 1
            ok = bool(row[3])
            if not ok:
                group.errors += 1
            if row[2] is not None:
                group.values.append(float(row[2]))
            if llm:
                if row[4] is not None:
                    group.ttfts.append(float(row[4]))
                speed = _tokens_per_second(ok, row[2], row[5])
                if speed is not None:
                    group.speeds.append(speed)
        if truncated:
            break
    await result.close()
    if current is not None:
        found += [g.summary(kind, name, current) for name, g in groups.items()]
    return found, truncated


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
