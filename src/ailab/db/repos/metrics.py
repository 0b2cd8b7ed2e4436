"""Queries on the performance history (``performance_metrics``) and on benchmark runs.

A row may stand for several observations (``weight``: the history keeps a sample of the successes of
a busy route, see ``services/monitoring/history.py``). Counts are sums of weights, and percentiles use one
definition on both databases: PostgreSQL's ``percentile_cont`` (linear interpolation between the two
nearest ranks: for sorted values ``v[0..n-1]`` and fraction ``p``, the value at position ``p * (n - 1)``)
taken over the values as if each were repeated ``weight`` times (:func:`weighted_percentile`; with every
weight 1 it is ``percentile_cont`` itself). PostgreSQL computes them in SQL: its own ``percentile_cont``
for the groups whose rows all have weight 1 (most groups: sampling starts only under load), window
functions for the others (:func:`_weighted_percentiles`); on SQLite the values are read in order and the
same arithmetic is done in Python.

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
    tuple_,
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


def weighted_percentile(ordered: Sequence[tuple[float, float]], fraction: float) -> float | None:
    """:func:`percentile_cont` over ``(value, weight)`` pairs sorted by value, each value counted
    ``weight`` times (weights of at least 1; they need not be whole).

    The pairs lie end to end on one axis, a pair covering positions ``[start, start + weight)``; the
    answer is at position ``fraction * (total weight - 1)``: the value of the pair covering it, or, past
    its last whole position ``start + weight - 1``, interpolated towards the next value.
    """
    if not ordered:
        return None
    target = fraction * (sum(weight for _, weight in ordered) - 1)
    end = 0.0
    last = len(ordered) - 1
    for index, (value, weight) in enumerate(ordered):
        end += weight
        if target < end or index == last:
            past = target - (end - 1)
            if past <= 0 or index == last:
                return value
            return value + (ordered[index + 1][0] - value) * past
    return None  # not reached: the last pair always answers


METRICS = cast(Table, PerformanceMetric.__table__)


_SQLITE_INSERT = (
    "INSERT INTO performance_metrics (kind, name, value, ok, weight, session_id, extra, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_samples(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert many samples (dicts of PerformanceMetric columns; ``created_at`` a datetime or unix seconds)
    in one statement; a row without ``weight`` stands for one observation.

    A transaction function (the background flush runs it through ``Database.run_write``). The server
    writes up to two samples per request (fewer under load: see ``services/monitoring/history.py``), on
    SQLite's one writer thread beside the requests' own writes: there the rows go to the driver as SQLite
    stores them (naive UTC text, JSON text, 0/1), since SQLAlchemy's per-value conversions cost as much as
    the insert itself; PostgreSQL gets a Core executemany.
    """
    if not rows:
        return 0
    if conn.dialect.name != "sqlite":
        conn.execute(
            insert(METRICS),
            [
                {**row, "weight": row.get("weight", 1.0), "created_at": _aware(row.get("created_at"))}
                for row in rows
            ],
        )
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
                row.get("weight", 1.0),
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
    window = (PerformanceMetric.created_at >= since,)
    keys = (PerformanceMetric.kind, PerformanceMetric.name)
    if db.get_bind().dialect.name == "postgresql":
        value = PerformanceMetric.value.cast(Float)
        pcts = [func.percentile_cont(p).within_group(value) for p in PERCENTILES]
        query = select(*keys, *_weighted_counts(), *pcts).where(*window).group_by(*keys)
        counts: dict[tuple[Any, ...], tuple[int, int]] = {}
        found: dict[tuple[Any, ...], list[float | None]] = {}
        sampled = []
        for kind, name, count, errs, weighted, *values in (await db.execute(query)).all():
            counts[(kind, name)] = (_whole(count), _whole(errs))
            found[(kind, name)] = [_float(v) for v in values]
            if weighted:
                sampled.append((kind, name))
        if sampled:
            where = (*window, tuple_(*keys).in_(sampled))
            found.update(await _weighted_percentiles(db, keys, value, where, PERCENTILES))
    else:
        counts_query = select(*keys, *_weighted_counts()).where(*window).group_by(*keys)
        counts = {(k, n): (_whole(c), _whole(e)) for k, n, c, e, _ in (await db.execute(counts_query)).all()}
        values_query = (
            select(*keys, PerformanceMetric.value, PerformanceMetric.weight)
            .where(*window, PerformanceMetric.value.is_not(None))
            .order_by(*keys, PerformanceMetric.value)
        )
        grouped: dict[tuple[Any, ...], list[tuple[float, float]]] = {}
        for kind, name, value, weight in await db.execute(values_query):
            grouped.setdefault((kind, name), []).append((float(value or 0.0), float(weight)))  # not NULL
        found = {key: [weighted_percentile(pairs, p) for p in PERCENTILES] for key, pairs in grouped.items()}
    summaries = []
    for key in sorted(counts):
        count, errs = counts[key]
        p50, p95, p99 = found.get(key, [None, None, None])
        summaries.append(GroupSummary(key[0], key[1], count, errs, p50, p95, p99))
    return summaries


def _weighted_counts() -> tuple[Any, Any, Any]:
    """``count`` and ``errors`` of a group, each a sum of weights, and whether any row stands for more than
    one observation (then PostgreSQL's ``percentile_cont``, which counts rows, does not apply)."""
    weight = PerformanceMetric.weight
    errors = func.sum(case((PerformanceMetric.ok.is_(False), weight), else_=0.0))
    return func.sum(weight), errors, func.max(weight) > 1


def _whole(value: Any) -> int:
    """A sum of weights as a count (the weights of one sampled batch add up to its whole number)."""
    return round(float(value or 0))


async def _weighted_percentiles(
    db: AsyncSession,
    keys: Sequence[Any],
    value: Any,
    where: Sequence[Any],
    fractions: Sequence[float],
) -> dict[tuple[Any, ...], list[float | None]]:
    """PostgreSQL: :func:`weighted_percentile` of ``value`` at each of ``fractions`` per group of ``keys``
    (rows matching ``where``, NULL values left out), in SQL.

    Each row learns where its span starts and ends on the group's axis: running sums of the weights in the
    order of the values, up to the row before and up to the row itself. Both add the same weights in the
    same order, so adjacent spans meet exactly and one row covers each position; the row covering the
    target position answers. All four window functions share one ordering, so the rows are sorted once.
    """
    weight = PerformanceMetric.weight
    order = (value, PerformanceMetric.id)
    spans = (
        select(
            *(key.label(f"k{i}") for i, key in enumerate(keys)),
            value.label("x"),
            func.coalesce(
                func.sum(weight).over(partition_by=keys, order_by=order, rows=(None, -1)), 0.0
            ).label("start"),
            func.sum(weight).over(partition_by=keys, order_by=order, rows=(None, 0)).label("end"),
            func.sum(weight).over(partition_by=keys).label("total"),
            func.lead(value).over(partition_by=keys, order_by=order).label("next"),
        )
        .where(*where, value.is_not(None))
        .subquery("spans")
    )
    row = spans.c
    answers = []
    for fraction in fractions:
        target = (row.total - 1) * fraction
        last_whole = row.end - 1
        at = case(
            (target <= last_whole, row.x),
            else_=row.x + (func.coalesce(row.next, row.x) - row.x) * (target - last_whole),
        )
        answers.append(func.max(case((and_(row.start <= target, target < row.end), at))))
    groups = [row[f"k{i}"] for i in range(len(keys))]
    query = select(*groups, *answers).group_by(*groups)
    return {
        tuple(found[: len(keys)]): [_float(v) for v in found[len(keys) :]]
        for found in (await db.execute(query)).all()
    }


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
    """One bucket's samples of one name, as ``(value, weight)`` pairs."""

    count: float = 0.0
    errors: float = 0.0
    values: list[tuple[float, float]] = field(default_factory=list)
    ttfts: list[tuple[float, float]] = field(default_factory=list)
    speeds: list[tuple[float, float]] = field(default_factory=list)

    def summary(self, kind: str, name: str, start: int) -> BucketSummary:
        self.values.sort()
        self.ttfts.sort()
        self.speeds.sort()
        p50, p95, p99 = (weighted_percentile(self.values, p) for p in PERCENTILES)
        return BucketSummary(
            kind,
            name,
            start,
            _whole(self.count),
            _whole(self.errors),
            p50,
            p95,
            p99,
            weighted_percentile(self.ttfts, 0.5),
            weighted_percentile(self.speeds, 0.5),
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
    ttft, completion = _llm_columns()
    speed = case(
        (
            and_(PerformanceMetric.ok.is_(True), completion > 0, PerformanceMetric.value > 0),
            completion * 1000.0 / PerformanceMetric.value,
        ),
        else_=None,
    )
    value = PerformanceMetric.value.cast(Float)
    where = (PerformanceMetric.created_at >= since, PerformanceMetric.kind.in_(kinds))
    keys = (PerformanceMetric.kind, PerformanceMetric.name, bucket)
    query = (
        select(
            *keys,
            *_weighted_counts(),
            *(func.percentile_cont(p).within_group(value) for p in PERCENTILES),
            func.percentile_cont(0.5).within_group(ttft),
            func.percentile_cont(0.5).within_group(speed),
        )
        .where(*where)
        .group_by(*keys)
        .order_by(*keys)
    )
    rows = (await db.execute(query)).all()
    sampled = [(kind, name, start) for kind, name, start, _, _, weighted, *_ in rows if weighted]
    values: dict[tuple[Any, ...], list[float | None]] = {}
    ttfts: dict[tuple[Any, ...], list[float | None]] = {}
    speeds: dict[tuple[Any, ...], list[float | None]] = {}
    if sampled:  # the groups with weights: their percentiles weighted, in SQL (see _weighted_percentiles)
        # Narrowed by name only (a few), not by bucket (hundreds: a long IN list costs more than it saves).
        names = sorted({(kind, name) for kind, name, _ in sampled})
        narrowed = (*where, tuple_(PerformanceMetric.kind, PerformanceMetric.name).in_(names))
        llm = (*narrowed, PerformanceMetric.kind == "llm")
        values = await _weighted_percentiles(db, keys, value, narrowed, PERCENTILES)
        ttfts = await _weighted_percentiles(db, keys, ttft, llm, (0.5,))
        speeds = await _weighted_percentiles(db, keys, speed, llm, (0.5,))
    found = []
    for kind, name, start, count, errs, weighted, *as_rows in rows:
        key = (kind, name, start)
        figures = as_rows
        if weighted:
            figures = [*values.get(key, [None] * 3), ttfts.get(key, [None])[0], speeds.get(key, [None])[0]]
        p50, p95, p99, ttft_p50, speed_p50 = (_float(v) for v in figures)
        found.append(
            BucketSummary(
                kind, name, int(start), _whole(count), _whole(errs), p50, p95, p99, ttft_p50, speed_p50
            )
        )
    return found


async def _buckets_streamed(
    db: AsyncSession, since: dt.datetime, bucket_seconds: int, kind: str, max_rows: int
) -> tuple[list[BucketSummary], bool]:
    llm = kind == "llm"
    columns: list[Any] = [
        PerformanceMetric.name,
        PerformanceMetric.created_at,
        PerformanceMetric.value,
        PerformanceMetric.ok,
        PerformanceMetric.weight,
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
            weight = float(row[4])
            group.count += weight
            ok = bool(row[3])
            if not ok:
                group.errors += weight
            if row[2] is not None:
                group.values.append((float(row[2]), weight))
            if llm:
                if row[5] is not None:
                    group.ttfts.append((float(row[5]), weight))
                speed = _tokens_per_second(ok, row[2], row[6])
                if speed is not None:
                    group.speeds.append((speed, weight))
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
