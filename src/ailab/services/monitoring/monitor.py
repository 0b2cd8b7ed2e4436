"""Monitoring: system samples, Prometheus metrics, the stored performance history and its summary.

One :class:`Monitor` per process (built by ``build_services``) owns three things:

- the **system sampler**, a background task that every ``system_sample_seconds`` reads CPU, memory, the
  data dir's disk, this process's RSS and the GPUs (NVML, in a thread: it can take milliseconds) and
  keeps the last sample. ``GET /metrics`` and ``/health`` serve that sample and never measure on the
  request path (the previous version's ``cpu_percent(interval=1)`` stalled every request for a second).
  CPU usage is ``psutil.cpu_percent(interval=None)``: the usage since the previous sample.
- the **Prometheus metrics** (:class:`ailab.metrics.Metrics`), fed by the request observer, the
  generation observer (``ProviderRegistry.observers``) and :func:`monitor_performance`.
- the **history writer**: the same observations become rows of ``performance_metrics`` (kind ``http``
  with name ``"<METHOD> <route template>"``, kind ``llm`` with the model id, kind ``function``; value in
  milliseconds). Observers only append to a bounded in-memory buffer; a background task inserts the
  buffer in one statement every ``metrics_flush_seconds`` and at shutdown, and deletes rows older than
  ``metrics_retention_days`` once an hour. When the buffer is full, new samples are dropped and counted
  (``ailab_performance_history_dropped_total``); a failed write puts the batch back while there is room.

``@monitor_performance("name")`` needs a sink and there is no global one: pass ``sink=monitor``, or let
it find the monitor *active in the current context* (a ``ContextVar``), which the API sets for every
request (``MonitorContextMiddleware``) and the CLI sets with ``with monitor.activate():``. Outside any
active monitor the function simply runs unmeasured.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import inspect
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar, overload

import psutil

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.repos import metrics as metrics_repo
from ailab.db.tables import utcnow
from ailab.metrics import Metrics
from ailab.providers.registry import GenerationRecord, ProviderRegistry

log = logging.getLogger("ailab.monitoring")
P = ParamSpec("P")
R = TypeVar("R")
MB = 1024 * 1024
MAX_BUFFERED_SAMPLES = 50_000
MAX_BATCH = 5_000
RETENTION_EVERY_S = 3600.0
# Retention applies to what this monitor writes; imported v2 history ("legacy") is the user's to keep.
RETAINED_KINDS = ("http", "llm", "function")
FIRST_SAMPLE_WAIT_S = 5.0
SECTIONS = {"http": "endpoints", "llm": "models", "function": "functions", "legacy": "legacy"}


# --- @monitor_performance ------------------------------------------------------------------------


class PerformanceSink(Protocol):
    """Where :func:`monitor_performance` reports a call."""

    def observe_function(self, name: str, duration_s: float, *, ok: bool) -> None: ...


_active_sink: ContextVar[PerformanceSink | None] = ContextVar("ailab_performance_sink", default=None)


class _PerformanceDecorator:
    def __init__(self, name: str, sink: PerformanceSink | None) -> None:
        self.name = name
        self.sink = sink

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        name, fixed = self.name, self.sink

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                sink = fixed or _active_sink.get()
                if sink is None:
                    return await fn(*args, **kwargs)
                start, ok = time.perf_counter(), False
                try:
                    result = await fn(*args, **kwargs)
                    ok = True
                    return result
                finally:
                    sink.observe_function(name, time.perf_counter() - start, ok=ok)

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            sink = fixed or _active_sink.get()
            if sink is None:
                return fn(*args, **kwargs)
            start, ok = time.perf_counter(), False
            try:
                result = fn(*args, **kwargs)
                ok = True
                return result
            finally:
                sink.observe_function(name, time.perf_counter() - start, ok=ok)

        return sync_wrapper


def monitor_performance(name: str, *, sink: PerformanceSink | None = None) -> _PerformanceDecorator:
    """Time every call of a sync or async function as ``name`` (histogram + stored history).

    ``sink`` fixes where calls are reported; without it, each call reports to the monitor active in its
    context (see the module docstring) or, when there is none, runs unmeasured. A call that raises is
    recorded with ``ok=False`` and the exception propagates unchanged.
    """
    return _PerformanceDecorator(name, sink)


# --- system samples ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuSample:
    name: str
    utilization_percent: float
    memory_used_mb: float
    memory_total_mb: float
    temperature_c: float | None


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One reading of the machine and this process."""

    cpu_usage_percent: float
    memory_usage_percent: float
    memory_used_mb: float
    memory_total_mb: float
    disk_usage_percent: float
    disk_used_gb: float
    disk_total_gb: float
    process_rss_mb: float
    process_cpu_percent: float
    gpus: list[GpuSample] = field(default_factory=list)
    sampled_at: float = 0.0  # unix time


class Nvml:
    """GPUs through NVML (nvidia-ml-py). Missing library, driver or GPU all mean: no GPUs."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._tried = False
        self._lock = threading.Lock()

    def _init(self) -> Any:
        if self._tried:
            return self._nvml
        self._tried = True
        try:
            import pynvml  # optional at run time: a machine without the driver has no libnvidia-ml

            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - no NVML is a normal machine, not an error
            log.debug("NVML unavailable: %s", exc)
            return None
        self._nvml = pynvml
        return pynvml

    def sample(self) -> list[GpuSample]:
        """One reading per GPU (blocking: call it in a thread)."""
        with self._lock:
            nvml = self._init()
            if nvml is None:
                return []
            try:
                return [self._one(nvml, i) for i in range(nvml.nvmlDeviceGetCount())]
            except Exception as exc:  # noqa: BLE001 - a GPU fallen off the bus must not break /metrics
                log.warning("NVML read failed: %s", exc)
                return []

    @staticmethod
    def _one(nvml: Any, index: int) -> GpuSample:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            utilization = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError:  # not supported on some (MIG, vGPU) devices
            utilization = 0.0
        try:
            temperature: float | None = float(
                nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            )
        except nvml.NVMLError:
            temperature = None
        return GpuSample(
            name=name.decode() if isinstance(name, bytes) else str(name),
            utilization_percent=utilization,
            memory_used_mb=round(memory.used / MB, 1),
            memory_total_mb=round(memory.total / MB, 1),
            temperature_c=temperature,
        )

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                with contextlib.suppress(Exception):
                    self._nvml.nvmlShutdown()
                self._nvml = None


class SystemSampler:
    """Reads the machine in a thread every ``interval`` seconds and keeps the last reading."""

    def __init__(self, data_dir: Path, interval: float) -> None:
        self.data_dir = data_dir
        self.interval = interval
        self.latest: SystemSample | None = None
        self.ready = asyncio.Event()
        self.nvml = Nvml()
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline
        self._process.cpu_percent(interval=None)

    def read(self) -> SystemSample:
        """Take one sample now (blocking: NVML and the file system; call it in a thread)."""
        memory = psutil.virtual_memory()
        try:
            disk = psutil.disk_usage(str(self.data_dir))
            disk_values = (float(disk.percent), disk.used / 1024**3, disk.total / 1024**3)
        except OSError:
            disk_values = (0.0, 0.0, 0.0)
        return SystemSample(
            cpu_usage_percent=float(psutil.cpu_percent(interval=None)),
            memory_usage_percent=float(memory.percent),
            memory_used_mb=round((memory.total - memory.available) / MB, 1),
            memory_total_mb=round(memory.total / MB, 1),
            disk_usage_percent=disk_values[0],
            disk_used_gb=round(disk_values[1], 2),
            disk_total_gb=round(disk_values[2], 2),
            process_rss_mb=round(self._process.memory_info().rss / MB, 1),
            process_cpu_percent=float(self._process.cpu_percent(interval=None)),
            gpus=self.nvml.sample(),
            sampled_at=time.time(),
        )

    async def sample(self) -> SystemSample:
        """Take a sample in a thread and keep it as the latest."""
        self.latest = await asyncio.to_thread(self.read)
        self.ready.set()
        return self.latest

    async def run(self, on_sample: Callable[[SystemSample], None], stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set; a failing sample is logged and retried next time."""
        while not stop.is_set():
            try:
                on_sample(await self.sample())
            except Exception:
                log.exception("system sample failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


# --- stored history ------------------------------------------------------------------------------


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
                "created_at": utcnow(),
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


# --- the monitor ---------------------------------------------------------------------------------


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

    @contextlib.contextmanager
    def activate(self) -> Iterator[Monitor]:
        """Make this monitor the sink of ``@monitor_performance`` in the current context."""
        token = _active_sink.set(self)
        try:
            yield self
        finally:
            _active_sink.reset(token)

    def track(self, name: str) -> _PerformanceDecorator:
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
