"""``/health``: the details for admins, a cached ready flag for everyone else.

``/health`` needs no credentials (load balancers and uptime monitors call it), so what it tells an
anonymous caller must be cheap and harmless: whether the server and its default model are ready, from a
check made at most every ``PUBLIC_TTL_S`` (concurrent callers share one check). The details (the
default model's id and the backend's own words, which can name internal hosts; the pool; the metrics)
are for admins, and checked afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ailab import __version__
from ailab.db.engine import Database

PUBLIC_TTL_S = 10.0


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A ``/health`` body and its status code."""

    body: dict[str, Any]
    status_code: int


class HealthCheck:
    """Builds the ``/health`` answers (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        probes: Mapping[str, Callable[[], Awaitable[Any]]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._probes = probes
        self._clock = clock
        self._public: tuple[float, HealthReport] | None = None
        self._lock = asyncio.Lock()

    async def _database(self) -> str:
        try:
            await self._db.ping()
        except Exception:  # noqa: BLE001 - reported, not raised
            return "unreachable"
        return "connected"

    async def details(self) -> HealthReport:
        """Everything, checked now (for admins)."""
        database = await self._database()
        body: dict[str, Any] = {
            "status": "healthy" if database == "connected" else "unhealthy",
            "version": __version__,
            "database": database,
            "database_pool": self._db.pool_status(),
        }
        for name, probe in self._probes.items():
            body[name] = await probe()
        return HealthReport(body, 200 if database == "connected" else 503)

    async def public(self) -> HealthReport:
        """Ready or not, and whether the database and the default model are: cached ``PUBLIC_TTL_S``."""
        cached = self._public
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        async with self._lock:
            cached = self._public
            if cached is not None and cached[0] > self._clock():
                return cached[1]  # another caller checked while this one waited
            full = await self.details()
            model = full.body.get("model")
            public = {
                "status": full.body["status"],
                "version": __version__,
                "database": full.body["database"],
                "model": {"ready": bool(model.get("ready"))} if isinstance(model, dict) else None,
            }
            report = HealthReport(public, full.status_code)
            self._public = (self._clock() + PUBLIC_TTL_S, report)
            return report
