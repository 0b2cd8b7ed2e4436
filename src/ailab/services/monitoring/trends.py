"""Latency over time: the stored performance history cut into time buckets (``GET /performance/history``).

The window of ``hours`` is cut into at most ``buckets`` buckets of ``bucket_seconds`` =
``ceil(hours * 3600 / buckets)`` seconds. Buckets start at multiples of ``bucket_seconds`` in unix time
(UTC), so two reads a minute apart give the same buckets and a chart does not shift under its reader; the
newest bucket is the one running now (partial), and the oldest starts ``buckets - 1`` buckets before it,
so the window covers ``hours`` to within one bucket. A point's ``t`` is its bucket's start in unix
seconds. Buckets without samples are left out.

Per HTTP route (``kind: "endpoint"``, named ``"<METHOD> <route template>"``) and per model (``kind:
"model"``, the full model id) each point has the count, the errors and the p50/p95/p99 of the duration
in milliseconds (``percentile_cont``, as in ``/performance/summary``); a model's points also have the
median time to first token and the median tokens per second (completion tokens over the whole
generation's duration, as the benchmark measures it), or null where no sample of the bucket has them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ailab.db.engine import Database
from ailab.db.repos import metrics as metrics_repo

SERIES_KINDS = {"http": "endpoint", "llm": "model"}
MAX_HISTORY_ROWS = 200_000  # per kind, read on SQLite for one answer (PostgreSQL aggregates in SQL)


def bucket_layout(now: float, hours: int, buckets: int) -> tuple[int, int]:
    """``(bucket_seconds, start of the oldest bucket)`` for a window of ``hours`` ending at ``now``."""
    size = max(1, math.ceil(hours * 3600 / buckets))
    newest = int(now) // size * size
    return size, newest - (buckets - 1) * size


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def series_of(buckets: list[metrics_repo.BucketSummary]) -> list[dict[str, Any]]:
    """One series per (kind, name), its points oldest first (``buckets`` sorted by kind, name, start)."""
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for bucket in buckets:
        kind = SERIES_KINDS.get(bucket.kind)
        if kind is None:
            continue
        entry = series.setdefault(
            (kind, bucket.name), {"kind": kind, "name": bucket.name, "count": 0, "points": []}
        )
        entry["count"] += bucket.count
        entry["points"].append(
            {
                "t": bucket.start,
                "count": bucket.count,
                "errors": bucket.errors,
                "p50_ms": _rounded(bucket.p50),
                "p95_ms": _rounded(bucket.p95),
                "p99_ms": _rounded(bucket.p99),
                "ttft_ms": _rounded(bucket.ttft_p50),
                "tokens_per_second": _rounded(bucket.tokens_per_second_p50),
            }
        )
    return list(series.values())


async def performance_history(
    db: Database,
    hours: int,
    buckets: int,
    *,
    now: float | None = None,
    max_rows: int = MAX_HISTORY_ROWS,
) -> dict[str, Any]:
    """The JSON of ``GET /performance/history`` (see the module docstring)."""
    size, first = bucket_layout(dt.datetime.now(dt.UTC).timestamp() if now is None else now, hours, buckets)
    since = dt.datetime.fromtimestamp(first, dt.UTC)
    async with db.read() as session:
        window = await metrics_repo.summarize_buckets(
            session, since, size, tuple(SERIES_KINDS), max_rows=max_rows
        )
    return {
        "hours": hours,
        "buckets": buckets,
        "bucket_seconds": size,
        "since": since.isoformat(),
        "unit": "ms",
        "percentile_method": "percentile_cont (linear interpolation)",
        "truncated": window.truncated,
        "series": series_of(window.buckets),
    }
