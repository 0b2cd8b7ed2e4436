"""Monitoring: system samples, Prometheus metrics, the stored performance history and its summary.

One :class:`Monitor` per process (built by ``build_services``) owns three things:

- the **system sampler**, a background task that every ``system_sample_seconds`` reads CPU, memory, the
  data dir's disk, this process's RSS and the GPUs (NVML, in a thread: it can take milliseconds) and
  keeps the last sample, and the last ten minutes of them in a ring. ``GET /metrics`` and ``/health``
  serve that sample and ``GET /metrics/history`` the ring; none measures on the request path (the
  previous version's ``cpu_percent(interval=1)`` stalled every request for a second).
  CPU usage is ``psutil.cpu_percent(interval=None)``: the usage since the previous sample.
- the **Prometheus metrics** (:class:`ailab.metrics.Metrics`), fed by the request observer, the
  generation observer (``ProviderRegistry.observers``) and :func:`monitor_performance`.
- the **history writer**: the same observations become rows of ``performance_metrics`` (kind ``http``
  with name ``"<METHOD> <route template>"``, kind ``llm`` with the model id, kind ``function``; value in
  milliseconds; under load a weighted uniform sample of them, see ``history.py``). Observers only append
  to a bounded in-memory buffer; a background task inserts the buffer in one statement every
  ``metrics_flush_seconds`` and at shutdown, and deletes rows older than ``metrics_retention_days`` once
  an hour. When the buffer is full, new samples are dropped and counted
  (``ailab_performance_history_dropped_total``); a failed write puts the batch back while there is room.

The parts live beside this module: ``system.py`` (the sampler), ``history.py`` (the writer),
``trends.py`` (the history per time bucket) and ``performance.py`` (``@monitor_performance``, which
reports to the monitor active in the context).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.repos import metrics as metrics_repo
from ailab.db.tables import utcnow
from ailab.metrics import Metrics
from ailab.providers.registry import GenerationRecord, ProviderRegistry
from ailab.services.monitoring import trends
from ailab.services.monitoring.history import HistoryWriter
from ailab.services.monitoring.performance import PerformanceDecorator, active_sink, monitor_performance
from ailab.services.monitoring.system import MB, RECENT_SECONDS, SystemSample, SystemSampler

log = logging.getLogger("ailab.monitoring")
FIRST_SAMPLE_WAIT_S = 5.0
SECTIONS = {"http": "endpoints", "llm": "models", "function": "functions", "legacy": "legacy"}


def _stats(group: metrics_repo.GroupSummary) -> dict[str, Any]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "count": group.count,
        "errors": group.errors,
        "error_rate": round(group.errors / group.count, 6) if group.count else 0.0,
        "p50": ms(group.p50),
        "p95": ms(group.p95),
        "p99": ms(group.p99),
    }


class Monitor:
    """The monitoring of one process: see the module docstring."""

    def __init__(self, settings: Settings, db: Database, metrics: Metrics) -> None:
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self.sampler = SystemSampler(settings.data_dir, settings.system_sample_seconds)
        self.history = HistoryWriter(
            db,
            flush_seconds=settings.metrics_flush_seconds,
            retention_days=settings.metrics_retention_days,
            on_drop=metrics.history_dropped.inc,
            samples_per_second=settings.metrics_samples_per_second,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started_mono

    async def start(self) -> None:
        """Start the sampler and the history writer in the background (returns at once)."""
        if self._tasks:
            return
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self.sampler.run(self._on_sample, self._stop), name="ailab-system-sampler"),
            asyncio.create_task(self.history.run(self._stop), name="ailab-history-writer"),
        ]

    async def aclose(self) -> None:
        """Stop the background tasks, write what is buffered, release NVML, retire this worker's gauges."""
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        try:
            await self.history.flush()
        except Exception:
            log.exception("final flush of the performance history failed")
        await asyncio.to_thread(self.sampler.nvml.close)
        self.metrics.mark_dead()

    def activate(self) -> Activation:
        """Make this monitor the sink of ``@monitor_performance`` in the current context (``with``)."""
        return Activation(self)

    def track(self, name: str) -> PerformanceDecorator:
        """``@monitor.track("name")``: :func:`monitor_performance` bound to this monitor."""
        return monitor_performance(name, sink=self)

    # Observers (called on the event loop or from threads; they never block) ------------------------

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        """A finished HTTP request."""
        self.metrics.observe_request(method, route, status, duration_s)
        self.history.add(
            "http", f"{method} {route}", duration_s * 1000, ok=status < 500, extra={"status": status}
        )

    def observe_generation(self, record: GenerationRecord) -> None:
        """A finished generation (``ProviderRegistry.observers``)."""
        model = record.model or "default"
        self.metrics.observe_generation(
            record.provider,
            model,
            ok=record.ok,
            duration_s=record.duration_s,
            ttft_s=record.ttft_s,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            error_kind=record.error_kind,
        )
        model_id = model if model.startswith(f"{record.provider}/") else f"{record.provider}/{model}"
        extra: dict[str, Any] = {
            "ttft_ms": None if record.ttft_s is None else round(record.ttft_s * 1000, 3),
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "stream": record.stream,
        }
        if record.error_kind:
            extra["error_kind"] = record.error_kind
        self.history.add("llm", model_id, record.duration_s * 1000, ok=record.ok, extra=extra)

    def observe_function(self, name: str, duration_s: float, *, ok: bool) -> None:
        """A call of a ``@monitor_performance`` function."""
        self.metrics.observe_function(name, duration_s, ok=ok)
        self.history.add("function", name, duration_s * 1000, ok=ok, extra={})

    def _on_sample(self, sample: SystemSample) -> None:
        self.metrics.flush()  # in multiprocess mode, what the other workers' scrapes read of this one
        self.metrics.set_system(
            cpu_ratio=sample.cpu_usage_percent / 100,
            memory_ratio=sample.memory_usage_percent / 100,
            disk_ratio=sample.disk_usage_percent / 100,
            gpus=[(g.utilization_percent / 100, g.memory_used_mb * MB) for g in sample.gpus],
        )
        self._update_process_gauges(sample)

    def _update_process_gauges(self, sample: SystemSample) -> None:
        self.metrics.set_process(
            rss_bytes=int(sample.process_rss_mb * MB),
            uptime_s=self.uptime_seconds,
            pool=self.db.pool_status(),
        )

    # Reading ---------------------------------------------------------------------------------------

    async def latest_sample(self) -> SystemSample:
        """The last background sample (waits for the first one right after start)."""
        if self.sampler.latest is None and self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sampler.ready.wait(), FIRST_SAMPLE_WAIT_S)
        if self.sampler.latest is None:  # not started (a CLI command) or the sampler failed: measure now
            await self.sampler.sample()
        assert self.sampler.latest is not None
        return self.sampler.latest

    async def snapshot(self) -> dict[str, Any]:
        """The JSON of ``GET /metrics``."""
        sample = await self.latest_sample()
        body = asdict(sample)
        body.update(
            {
                "uptime_seconds": round(self.uptime_seconds, 3),
                "started_at": dt.datetime.fromtimestamp(self.started_at, dt.UTC).isoformat(),
                "pid": os.getpid(),
                "database_pool": self.db.pool_status(),
                "performance_buffer": len(self.history),
                "performance_dropped": self.history.dropped,
            }
        )
        return body

    async def system_history(self) -> dict[str, Any]:
        """The JSON of ``GET /metrics/history``: the sampler's readings of the last ten minutes."""
        await self.latest_sample()  # right after start: wait for the first reading
        return {
            "interval_seconds": self.sampler.interval,
            "window_seconds": RECENT_SECONDS,
            "samples": [
                {
                    "t": sample.sampled_at,
                    "cpu_usage_percent": sample.cpu_usage_percent,
                    "memory_usage_percent": sample.memory_usage_percent,
                    "gpus": [asdict(gpu) for gpu in sample.gpus],
                }
                for sample in self.sampler.recent
            ],
        }

    async def health_summary(self) -> dict[str, Any]:
        """The ``metrics`` section of ``/health``: CPU, memory and uptime from the last sample."""
        sample = self.sampler.latest
        return {
            "cpu_usage_percent": None if sample is None else sample.cpu_usage_percent,
            "memory_usage_percent": None if sample is None else sample.memory_usage_percent,
            "process_rss_mb": None if sample is None else sample.process_rss_mb,
            "gpu_count": None if sample is None else len(sample.gpus),
            "uptime_seconds": round(self.uptime_seconds, 3),
        }

    async def prometheus(self) -> bytes:
        """The Prometheus text exposition (merged over workers in multiprocess mode)."""
        if self.sampler.latest is not None:
            self._update_process_gauges(self.sampler.latest)
        return await asyncio.to_thread(self.metrics.exposition)

    async def summary(self, hours: float) -> dict[str, Any]:
        """Count, error rate and p50/p95/p99 (ms) per endpoint, model and function over ``hours``."""
        await self.history.flush()
        since = utcnow() - dt.timedelta(hours=hours)
        async with self.db.read() as session:
            groups = await metrics_repo.summarize_window(session, since)
        body: dict[str, Any] = {
            "hours": hours,
            "since": since.isoformat(),
            "unit": "ms",
            "percentile_method": "percentile_cont (linear interpolation)",
            "total": sum(g.count for g in groups),
        }
        for section in SECTIONS.values():
            body[section] = {}
        for group in groups:
            body.setdefault(SECTIONS.get(group.kind, group.kind), {})[group.name] = _stats(group)
        return body

    async def performance_history(self, hours: int, buckets: int) -> dict[str, Any]:
        """Per route and per model, latency (and TTFT, tokens/s) per time bucket: see ``trends.py``.

        Like :meth:`summary`, writes the buffered samples first, so a request made just before shows.
        """
        await self.history.flush()
        return await trends.performance_history(self.db, hours, buckets)


async def default_model_id(providers: ProviderRegistry) -> str:
    """The full id (``provider/model``) of the model used when a request names none."""
    provider, name = providers.resolve(None)
    if not name:
        models = await provider.list_models()
        name = models[0].id if models else ""
    return f"{provider.name}/{name}" if name else provider.name


def model_probe(providers: ProviderRegistry, *, timeout_s: float = 3.0) -> Callable[[], Awaitable[Any]]:
    """The ``model`` section of ``/health``: the default model and whether its provider is ready."""

    async def probe() -> dict[str, Any]:
        try:
            provider, _ = providers.resolve(None)
            model = await asyncio.wait_for(default_model_id(providers), timeout_s)
            health = await asyncio.wait_for(provider.health(), timeout_s)
        except TimeoutError:
            return {"id": None, "ready": False, "detail": f"no answer within {timeout_s:g}s"}
        except Exception as exc:  # noqa: BLE001 - /health reports, never raises
            return {"id": None, "ready": False, "detail": getattr(exc, "message", type(exc).__name__)}
        return {"id": model, "ready": health.ok, "detail": health.detail}

    return probe


class Activation:
    """The context manager of :meth:`Monitor.activate` (a class: every hot request enters one, and a
    generator-based one costs several times more)."""

    __slots__ = ("_monitor", "_token")

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def __enter__(self) -> Monitor:
        self._token = active_sink.set(self._monitor)
        return self._monitor

    def __exit__(self, *exc_info: object) -> None:
        active_sink.reset(self._token)
