"""Where the processes' counts meet, so that they enforce one budget: the database or Redis.

- :class:`DatabaseCounts` (no ``AILAB_REDIS_URL``): the counts a process flushes to ``usage_counts`` are
  the shared ones; a sync reads back the period totals of the limited users and tokens (one indexed
  query, made only while a budget is set). Workers and replicas on one database thus share budgets as
  soon as their flushes land.
- :class:`RedisCounts` (``AILAB_REDIS_URL``): each process adds its new counts to one hash per subject,
  period and period start (``HINCRBY``, in one ``MULTI``; the key expires an hour after its period ends)
  and reads the totals back in the same round trip. The database is then only written, never read, on
  this path. A Redis that lost its data (a restart without persistence) counts the current periods from
  nothing again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ailab.db.engine import Database
from ailab.db.repos import usage as repo
from ailab.services.usage.budgets import Pending, Totals, Want
from ailab.services.usage.periods import HOUR_S, PERIODS, as_datetime, bounds

EXPIRY_MARGIN_S = HOUR_S  # a replica whose sync is late still reads a period that has just ended


class SharedCounts(Protocol):
    """Takes this process's new counts and gives every process's totals."""

    # Whether the totals are read from what the recorder wrote: then a sync whose write failed must not
    # read them (they would miss the counts that failed).
    reads_what_was_written: bool

    async def exchange(self, counts: Pending, wanted: Sequence[Want]) -> Totals:
        """Add ``counts``, and answer the totals of ``wanted`` (every one of them, zero when unused)."""
        ...


class DatabaseCounts:
    """The totals from ``usage_counts`` (see the module docstring)."""

    reads_what_was_written = True

    def __init__(self, db: Database) -> None:
        self._db = db

    async def exchange(self, counts: Pending, wanted: Sequence[Want]) -> Totals:
        """The counts are in the database already (the recorder wrote them); read the totals."""
        if not wanted:
            return {}
        starts = {period: as_datetime(start) for _, _, period, start in wanted}
        totals: Totals = {}
        for kind in {kind for kind, *_ in wanted}:
            ids = sorted({subject for k, subject, _, _ in wanted if k == kind})
            found = await self._db.run_read(repo.period_totals, kind, ids, starts)
            for k, subject, period, start in wanted:
                if k == kind:
                    requests, tokens = found.get(subject, {}).get(period, (0, 0))
                    totals[(kind, subject, period)] = (start, requests, tokens)
        return totals


class RedisCounts:
    """The totals in Redis (see the module docstring)."""

    reads_what_was_written = False

    def __init__(self, redis: Any, *, prefix: str = "ailab") -> None:
        self._redis = redis
        self._prefix = f"{prefix}:usage"

    def _key(self, kind: str, subject_id: str, period: str, start: int) -> str:
        return f"{self._prefix}:{kind}:{subject_id}:{period}:{start}"

    async def exchange(self, counts: Pending, wanted: Sequence[Want]) -> Totals:
        """One ``MULTI``: the increments, then the totals (raises RedisError; nothing is added then)."""
        increments: dict[str, list[int]] = {}  # key -> [requests, tokens, expires at]
        for (kind, subject_id), hours in counts.items():
            for hour, (requests, tokens) in hours.items():
                for each in PERIODS:
                    start, end = bounds(each, hour)
                    added = increments.setdefault(
                        self._key(kind, subject_id, each, start), [0, 0, end + EXPIRY_MARGIN_S]
                    )
                    added[0] += requests
                    added[1] += tokens
        if not increments and not wanted:
            return {}
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, (requests, tokens, expires) in increments.items():
                pipe.hincrby(key, "requests", requests)
                pipe.hincrby(key, "tokens", tokens)
                pipe.expireat(key, expires)
            for kind, subject_id, period, start in wanted:
                pipe.hmget(self._key(kind, subject_id, period, start), "requests", "tokens")
            replies = await pipe.execute()
        read = replies[len(replies) - len(wanted) :] if wanted else []
        return {
            (kind, subject_id, period): (start, int(requests or 0), int(tokens or 0))
            for (kind, subject_id, period, start), (requests, tokens) in zip(wanted, read, strict=True)
        }
