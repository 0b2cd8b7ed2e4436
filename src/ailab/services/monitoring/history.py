"""The stored performance history: samples buffered in memory, written to ``performance_metrics`` in
batches, and deleted past their retention period.

Under load the history keeps a sample, not every observation: per (kind, name, ok) and per flush, the
first ``samples_per_second * flush_seconds`` observations are kept, and past that a uniform sample of that
size (a reservoir: the n-th observation replaces a random kept one with probability size/n). At the flush
each kept row gets ``weight`` = observations / rows kept, so a batch's weights add up to exactly what it
saw: counts and error counts stay exact, and percentiles are estimated from a uniform sample (at the
default 100 a second, a one-minute bucket of the dashboard holds 6,000 rows per route). Below the rate
nothing changes: every observation is a row of weight 1. At thousands of requests per second this is what
keeps the writer (one thread shared with the requests' own writes on SQLite) and the table small.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ailab.db.engine import Database
from ailab.db.repos import metrics as metrics_repo
from ailab.db.tables import utcnow

log = logging.getLogger("ailab.monitoring")
MAX_BUFFERED_SAMPLES = 50_000
MAX_BATCH = 5_000
RETENTION_EVERY_S = 3600.0
# Retention applies to what this monitor writes; imported v2 history ("legacy") is the user's to keep.
RETAINED_KINDS = ("http", "llm", "function")


class _Reservoir:
    """One (kind, name, ok)'s observations since the last flush: how many, and the rows kept of them."""

    __slots__ = ("rows", "seen")

    def __init__(self) -> None:
        self.seen = 0
        self.rows: list[dict[str, Any]] = []


def _row(kind: str, name: str, value_ms: float, ok: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name[:255],
        "value": value_ms,
        "ok": ok,
        "extra": extra,
        "created_at": time.time(),  # unix seconds: made into a timestamp in the writer's batch
    }


class HistoryWriter:
    """Buffers samples in memory and writes them to ``performance_metrics`` in batches."""

    def __init__(
        self,
        db: Database,
        *,
        flush_seconds: float,
        retention_days: int,
        on_drop: Callable[[int], None],
        samples_per_second: int,
        max_buffered: int = MAX_BUFFERED_SAMPLES,
    ) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.retention = dt.timedelta(days=retention_days)
        self.max_buffered = max_buffered
        # Rows kept per (kind, name, ok) between two flushes; past it, a uniform sample of that size.
        self.sample_size = max(1, round(samples_per_second * flush_seconds))
        self.on_drop = on_drop
        self.dropped = 0
        self._buffer: deque[dict[str, Any]] = deque()  # sealed rows, weights set, waiting to be written
        self._open: dict[tuple[str, str, bool], _Reservoir] = {}
        self._open_rows = 0
        self._lock = threading.Lock()  # observers may run on other threads (the local model's)
        self._flush_lock = asyncio.Lock()
        self._last_retention = 0.0

    def __len__(self) -> int:
        return len(self._buffer) + self._open_rows

    def add(self, kind: str, name: str, value_ms: float, *, ok: bool, extra: dict[str, Any]) -> None:
        """Record one observation (thread-safe, never blocks; dropped and counted when the buffer is full).

        It becomes a row, or takes a random kept row's place, or only counts: see the module docstring.
        """
        with self._lock:
            key = (kind, name, ok)
            reservoir = self._open.get(key)
            if reservoir is None:
                reservoir = self._open[key] = _Reservoir()
            if len(reservoir.rows) < self.sample_size:
                if len(self._buffer) + self._open_rows >= self.max_buffered:
                    self.dropped += 1
                    self.on_drop(1)
                    return
                reservoir.seen += 1
                reservoir.rows.append(_row(kind, name, value_ms, ok, extra))
                self._open_rows += 1
                return
            reservoir.seen += 1
            slot = int(random.random() * reservoir.seen)
            if slot < self.sample_size:
                reservoir.rows[slot] = _row(kind, name, value_ms, ok, extra)

    def _seal(self) -> None:
        """Weigh the open reservoirs' rows and queue them for writing."""
        with self._lock:
            sealed, self._open, self._open_rows = self._open, {}, 0
            for reservoir in sealed.values():
                if not reservoir.rows:  # its every observation came while the buffer was full
                    continue
                weight = reservoir.seen / len(reservoir.rows)
                for row in reservoir.rows:
                    row["weight"] = weight
                self._buffer.extend(reservoir.rows)

    async def flush(self) -> int:
        """Write everything buffered now; returns the number of rows written."""
        written = 0
        async with self._flush_lock:
            self._seal()
            while self._buffer:
                batch = [self._buffer.popleft() for _ in range(min(MAX_BATCH, len(self._buffer)))]
                try:
                    await self.db.run_write(metrics_repo.insert_samples, batch)
                except Exception as exc:  # noqa: BLE001 - keep serving; retry the batch on the next flush
                    room = self.max_buffered - len(self._buffer)
                    self._buffer.extendleft(reversed(batch[:room]))
                    if len(batch) > room:
                        self.dropped += len(batch) - room
                        self.on_drop(len(batch) - room)
                    log.warning("writing %d performance samples failed: %s", len(batch), type(exc).__name__)
                    break
                written += len(batch)
        return written

    async def apply_retention(self) -> int:
        """Delete samples older than the retention period; returns how many."""
        self._last_retention = time.monotonic()
        # Not a transaction function: on SQLite a large delete would queue requests' lookups behind it.
        async with self.db.write() as session:
            return await metrics_repo.delete_before(session, utcnow() - self.retention, RETAINED_KINDS)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every ``flush_seconds`` (and apply retention hourly) until ``stop``; then flush once more."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.flush_seconds)
            try:
                await self.flush()
                if time.monotonic() - self._last_retention >= RETENTION_EVERY_S:
                    await self.apply_retention()
            except Exception:
                log.exception("performance history maintenance failed")
