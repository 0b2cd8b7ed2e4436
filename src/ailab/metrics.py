"""Every Prometheus metric of AI-Lab, in one place.

:class:`Metrics` is built once per application (never at import), each with its own
``CollectorRegistry``, so tests can build many apps in one process. Names follow Prometheus conventions
(base units, ``_seconds``, ``_total``) and the OpenTelemetry GenAI semantic conventions where a name
exists there (``gen_ai_server_time_to_first_token_seconds``, ``gen_ai_server_request_duration_seconds``,
``gen_ai_client_token_usage`` with ``token_type`` input/output).

Labels are bounded: HTTP metrics carry the route *template* (``/sessions/{session_id}``, never the raw
path), the method (unknown methods become ``OTHER``) and the status class (``2xx``...); LLM metrics carry
the provider name and the model id, capped at :data:`MAX_MODEL_LABELS` distinct models per process
(later ones are counted under ``model="other"``), and error kinds are our own error codes; routing
metrics carry the alias and its deployments' keys, which come from the models file, not from requests.
No label carries a prompt, a user, a session or a secret.

Several worker processes (``ai-lab serve --workers N``): ``ai-lab serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory (:func:`prepare_multiprocess_dir`) before the workers
start; prometheus-client then keeps each process's values in memory-mapped files there, and
:meth:`Metrics.exposition` merges the files of every process (``MultiProcessCollector``). Gauges use
``live*`` modes so a worker that exits (:meth:`Metrics.mark_dead`) stops counting; counters and
histograms of dead workers keep their totals, as Prometheus expects of counters.

Recording counts into plain numbers (``tally.py``), which :meth:`Metrics.flush` adds to the metrics: the
exposition flushes first, so a scrape of one process is exact; in multiprocess mode each worker also
flushes with every system sample (``AILAB_SYSTEM_SAMPLE_SECONDS``) and at shutdown, so a scrape answered by
one worker shows the others' counts as of their last sample.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)

from ailab.tally import CounterTally, HistogramTally, Tallies

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROC_DIRNAME = "prometheus-multiproc"
MAX_MODEL_LABELS = 100
MAX_MODEL_SERIES = 1000  # (provider, model) names whose children are remembered
MAX_REQUEST_SERIES = 5000  # (method, route, status) of requests whose child is remembered
MAX_LABEL_CHARS = 128
OTHER = "other"
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Buckets: HTTP from 1 ms to 60 s; generations from 10 ms (TTFT) to 10 minutes (long answers).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0)
GENERATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)
TOKENS_PER_SECOND_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
FUNCTION_BUCKETS = HTTP_BUCKETS


def multiprocess_dir() -> Path | None:
    """The multiprocess directory when this process records into one, else None.

    prometheus-client decides at import time, from the environment, whether values live in memory
    or in files; both must agree, so this reads the same switch.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path or values.ValueClass is values.MutexValue:
        return None
    return Path(path)


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """Make ``<data_dir>/prometheus-multiproc`` empty and point ``PROMETHEUS_MULTIPROC_DIR`` at it.

    Called by ``ai-lab serve --workers N`` before any worker starts: files of an earlier run would add
    its counts to this one's.
    """
    path = data_dir / MULTIPROC_DIRNAME
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


@dataclass(frozen=True, slots=True)
class _ModelSeries:
    """One model's tallies of the generation metrics: a generation records into up to nine of them."""

    provider: str  # the label values (``other`` past the cap)
    model: str
    duration: Any
    ok: Any
    errors: Any
    ttft: Any
    tokens_per_second: Any
    input_tokens: Any
    output_tokens: Any
    input_usage: Any
    output_usage: Any


def status_class(status: int) -> str:
    """``2xx``, ``4xx``...: the bounded form of a status code."""
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class Metrics:
    """The metrics of one application, registered in their own registry."""

    def __init__(self, multiproc_dir: Path | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self._models: set[tuple[str, str]] = set()
        self._models_lock = threading.Lock()
        self.tallies = Tallies()
        # Each label set's tally, looked up once: ``labels()`` (a lock, checks, a tuple of strings) costs
        # several times what counting does, and a request records into a dozen.
        self._by_labels: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._model_series: dict[tuple[str, str], _ModelSeries] = {}
        self._request_tallies: dict[tuple[str, str, int], Any] = {}
        if multiproc_dir is None:
            # Standard process_* and python_info series; in multiprocess mode they would describe
            # only the worker that answers the scrape, so they are left out there.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        r = self.registry
        provider_model = ["provider", "model"]

        self.http_duration = Histogram(
            "ailab_http_request_duration_seconds",
            "Duration of HTTP requests by route template, method and status class.",
            ["method", "route", "status_class"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from the start of a generation to its first output token.",
            provider_model,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.generation_duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "Duration of whole generations, failed ones included.",
            provider_model,
            buckets=GENERATION_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "ailab_llm_output_tokens_per_second",
            "Output tokens per second of successful generations (completion tokens / duration).",
            provider_model,
            buckets=TOKENS_PER_SECOND_BUCKETS,
            registry=r,
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per generation, by token_type input (prompt) or output (completion).",
            [*provider_model, "token_type"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ailab_llm_tokens",
            "Tokens processed, by type input (prompt) or output (completion).",
            [*provider_model, "type"],
            registry=r,
        )
        self.generations = Counter(
            "ailab_llm_requests",
            "Generations by outcome (ok or error), and requests refused by a usage budget (limited).",
            [*provider_model, "outcome"],
            registry=r,
        )
        self.llm_errors = Counter(
            "ailab_llm_errors",
            "Failed generations by error kind (our error code: upstream_timeout, invalid_api_key...).",
            [*provider_model, "error_kind"],
            registry=r,
        )
        self.route_attempts = Counter(
            "ailab_route_attempts",
            "Attempts of model aliases on their deployments and fallbacks, by outcome: ok, fallback (a "
            "fallback answered), rejected (the request itself refused), retried, cooled_down (the failure "
            "started a cool-down), failed (the last attempt of a request that got no answer), cancelled "
            "(its client left); unavailable: a request that could try nothing (no deployment label).",
            ["alias", "deployment", "outcome"],
            registry=r,
        )
        self.function_duration = Histogram(
            "ailab_function_duration_seconds",
            "Duration of functions decorated with @monitor_performance, by name and outcome.",
            ["function", "outcome"],
            buckets=FUNCTION_BUCKETS,
            registry=r,
        )
        self.history_dropped = Counter(
            "ailab_performance_history_dropped",
            "Performance samples dropped because the write buffer was full.",
            registry=r,
        )
        # Gauges: per-process values are summed over live workers; system-wide ones take the latest.
        self.process_rss = Gauge(
            "ailab_process_resident_memory_bytes",
            "Resident memory of the server processes (summed over live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.process_uptime = Gauge(
            "ailab_process_uptime_seconds",
            "Seconds since the longest-running live worker started.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.db_pool = Gauge(
            "ailab_db_pool_connections",
            "Database pool connections by state (in_use, idle), summed over live workers.",
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cpu_usage = Gauge(
            "ailab_system_cpu_usage_ratio",
            "Machine CPU usage between 0 and 1, from the last background sample.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.memory_usage = Gauge(
            "ailab_system_memory_usage_ratio",
            "Machine memory usage between 0 and 1, from the last background sample.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.disk_usage = Gauge(
            "ailab_data_dir_disk_usage_ratio",
            "Usage of the file system holding the data dir, between 0 and 1.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.gpu_utilization = Gauge(
            "ailab_gpu_utilization_ratio",
            "GPU utilisation between 0 and 1, by GPU index (NVML).",
            ["gpu"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.gpu_memory_used = Gauge(
            "ailab_gpu_memory_used_bytes",
            "GPU memory in use, by GPU index (NVML).",
            ["gpu"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )

    @classmethod
    def from_environment(cls) -> Metrics:
        """Metrics in multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set, in memory otherwise."""
        metrics = cls(multiprocess_dir())
        metrics.sweep_dead_workers()
        return metrics

    # Recording (see ``tally.py``: plain numbers here, added to the metrics by ``flush``) ---------------

    def _tally(self, metric: Any, *labels: str) -> Any:
        """The tally of ``metric.labels(*labels)``, kept (labels are bounded: see the module docstring)."""
        key = (id(metric), labels)
        tally = self._by_labels.get(key)
        if tally is None:
            child = metric.labels(*labels)
            kind = HistogramTally if isinstance(metric, Histogram) else CounterTally
            tally = self._by_labels[key] = kind(child)
        return tally

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Count one finished HTTP request."""
        with self.tallies.lock:
            tally = self._request_tallies.get((method, route, status))
            if tally is None:
                labels = (
                    method if method in _METHODS else "OTHER",
                    route[:MAX_LABEL_CHARS],
                    status_class(status),
                )
                tally = self._tally(self.http_duration, *labels)
                if len(self._request_tallies) < MAX_REQUEST_SERIES:
                    self._request_tallies[(method, route, status)] = tally
            self.tallies.observe(tally, duration_s)

    def model_labels(self, provider: str, model: str) -> tuple[str, str]:
        """Bounded ``(provider, model)`` label values: new models beyond the cap become ``other``."""
        key = (provider[:MAX_LABEL_CHARS], model[:MAX_LABEL_CHARS])
        with self._models_lock:
            if key in self._models:
                return key
            if len(self._models) < MAX_MODEL_LABELS:
                self._models.add(key)
                return key
        return key[0], OTHER

    def observe_generation(
        self,
        provider: str,
        model: str,
        *,
        ok: bool,
        duration_s: float,
        ttft_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        error_kind: str | None,
    ) -> None:
        """Count one generation (successful or not)."""
        tallies = self.tallies
        with tallies.lock:
            series = self._model_series.get((provider, model)) or self._series_of(provider, model)
            tallies.observe(series.duration, duration_s)
            if not ok:
                tallies.inc(series.errors)
                kind = (error_kind or "unknown")[:64]
                tallies.inc(self._tally(self.llm_errors, series.provider, series.model, kind))
            else:
                tallies.inc(series.ok)
                if completion_tokens and duration_s > 0:
                    tallies.observe(series.tokens_per_second, completion_tokens / duration_s)
            if ttft_s is not None:
                tallies.observe(series.ttft, ttft_s)
            if prompt_tokens:
                tallies.inc(series.input_tokens, prompt_tokens)
                tallies.observe(series.input_usage, prompt_tokens)
            if completion_tokens:
                tallies.inc(series.output_tokens, completion_tokens)
                tallies.observe(series.output_usage, completion_tokens)

    def _series_of(self, provider: str, model: str) -> _ModelSeries:
        """The tallies of one model's generation metrics, remembered for the next generation (for at most
        :data:`MAX_MODEL_SERIES` names: past the label cap, names a client made up need not be kept)."""
        p, m = self.model_labels(provider, model)
        tally = self._tally
        series = _ModelSeries(
            p,
            m,
            duration=tally(self.generation_duration, p, m),
            ok=tally(self.generations, p, m, "ok"),
            errors=tally(self.generations, p, m, "error"),
            ttft=tally(self.ttft, p, m),
            tokens_per_second=tally(self.tokens_per_second, p, m),
            input_tokens=tally(self.tokens, p, m, "input"),
            output_tokens=tally(self.tokens, p, m, "output"),
            input_usage=tally(self.token_usage, p, m, "input"),
            output_usage=tally(self.token_usage, p, m, "output"),
        )
        if len(self._model_series) < MAX_MODEL_SERIES:
            self._model_series[(provider, model)] = series
        return series

    def observe_limited(self, model_id: str) -> None:
        """Count a request refused by a usage budget (outcome ``limited``) under the ``provider/model`` it
        asked for (a model id without a provider counts under an empty provider)."""
        provider, _, model = model_id.partition("/")
        if not model:
            provider, model = "", provider or "default"
        p, m = self.model_labels(provider, model)
        with self.tallies.lock:
            self.tallies.inc(self._tally(self.generations, p, m, "limited"))

    def observe_route_attempt(self, alias: str, deployment: str, outcome: str) -> None:
        """Count one attempt of a model alias on a deployment or fallback (its key) and how it ended."""
        with self.tallies.lock:
            self.tallies.inc(self._tally(self.route_attempts, alias, deployment[:MAX_LABEL_CHARS], outcome))

    def observe_function(self, name: str, duration_s: float, *, ok: bool) -> None:
        """Count one call of a ``@monitor_performance`` function."""
        with self.tallies.lock:
            tally = self._tally(self.function_duration, name[:MAX_LABEL_CHARS], "ok" if ok else "error")
            self.tallies.observe(tally, duration_s)

    def flush(self) -> None:
        """Add what was counted since the last flush to the metrics (``tally.py``): the exposition does it
        first; the monitor with each system sample and at shutdown, for the other workers' scrapes."""
        self.tallies.flush()

    def set_process(self, *, rss_bytes: int, uptime_s: float, pool: dict[str, int]) -> None:
        """Update this process's gauges."""
        self.process_rss.set(rss_bytes)
        self.process_uptime.set(uptime_s)
        for state, count in pool.items():
            self.db_pool.labels(state).set(count)

    def set_system(
        self, *, cpu_ratio: float, memory_ratio: float, disk_ratio: float, gpus: list[tuple[float, float]]
    ) -> None:
        """Update the machine gauges; ``gpus`` is ``(utilisation ratio, memory used bytes)`` per GPU."""
        self.cpu_usage.set(cpu_ratio)
        self.memory_usage.set(memory_ratio)
        self.disk_usage.set(disk_ratio)
        for index, (utilization, memory_used) in enumerate(gpus):
            self.gpu_utilization.labels(str(index)).set(utilization)
            self.gpu_memory_used.labels(str(index)).set(memory_used)

    # Exposition ------------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text exposition of every metric (of every worker in multiprocess mode); blocking I/O."""
        self.flush()
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(self.multiproc_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def sweep_dead_workers(self) -> list[int]:
        """Drop the live-gauge files of workers that are gone (crashed or restarted); returns their pids."""
        if self.multiproc_dir is None:
            return []
        dead: set[int] = set()
        for path in self.multiproc_dir.glob("gauge_live*_*.db"):
            pid_text = path.stem.rsplit("_", 1)[-1]
            if pid_text.isdigit() and not psutil.pid_exists(int(pid_text)):
                dead.add(int(pid_text))
        for pid in dead:
            multiprocess.mark_process_dead(pid, str(self.multiproc_dir))  # type: ignore[no-untyped-call]
        return sorted(dead)

    def mark_dead(self) -> None:
        """At shutdown: this worker's live gauges stop counting (its counters keep their totals, this
        worker's last counts added first)."""
        self.flush()
        if self.multiproc_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiproc_dir))  # type: ignore[no-untyped-call]
