"""The stored performance history: samples buffered in memory, written to ``performance_metrics`` in
batches, and deleted past their retention period."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
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


class HistoryWriter:
    """Buffers samples in memory and writes them to ``performance_metrics`` in batches."""

    def __init__(
        self,
        db: Database,
        *,
        flush_seconds: float,
        retention_days: int,
        on_drop: Callable[[int], None],
        max_buffered: int = MAX_BUFFERED_SAMPLES,
    ) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.retention = dt.timedelta(days=retention_days)
        self.max_buffered = max_buffered
        self.on_drop = on_drop
        self.dropped = 0
        self._buffer: deque[dict[str, Any]] = deque()
        self._flush_lock = asyncio.Lock()
        self._last_retention = 0.0

    def __len__(self) -> int:
        return len(self._buffer)

    def add(self, kind: str, name: str, value_ms: float, *, ok: bool, extra: dict[str, Any]) -> None:
        """Queue one sample (thread-safe, never blocks; dropped and counted when the buffer is full)."""
        if len(self._buffer) >= self.max_buffered:
            self.dropped += 1
            self.on_drop(1)
            return
        self._buffer.append(
            {
                "kind": kind,
                "name": name[:255],
                "value": value_ms,
                "ok": ok,
                "extra": extra,
                "created_at": time.time(),  # unix seconds: made into a timestamp in the writer's batch
            }
        )

    async def flush(self) -> int:
        """Write everything buffered now; returns the number of rows written."""
        written = 0
        async with self._flush_lock:
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
