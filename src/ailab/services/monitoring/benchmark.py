"""The LLM benchmark: time to first token and tokens per second, per model, side by side.

For each model in turn, ``iterations`` generations of the same prompt run with at most ``concurrency``
in flight. Every iteration streams from the provider and measures:

Unless ``warmup`` is off, one untimed 1-token generation per model comes first, so a model that loads
on first use (the embedded one) is not timed loading.

- ``ttft_ms``: from sending the request to the first non-empty text chunk (queueing in the provider
  included: with concurrency above what a backend serves at once, that is what a user would wait);
- ``total_ms``: from sending the request to the last chunk;
- ``completion_tokens``: the provider's usage count (the number of text chunks when it gives none);
- ``tokens_per_second``: ``completion_tokens / total time`` (end-to-end throughput of one request).

Per model: mean, p50, p95 (the ``percentile_cont`` definition of ``db/repos/metrics.py``), min and max
of ``ttft_ms``, ``total_ms`` and ``tokens_per_second`` over successful iterations, and the model's wall
time. A failed iteration is reported with its error code and the run goes on. Every generation is also
reported to the provider registry's observers (metrics and history), like a chat.

The engine only awaits: generation happens in the providers (their threads or upstream servers), so a
long run never blocks the event loop. Runs are stored in ``benchmark_runs``: ``running``, then ``done``
(at least one iteration succeeded) or ``error``. ``start`` runs one in a background task; unfinished runs
are marked ``error`` when the process shuts down. A benchmark is expensive (up to 16 models x 100
iterations x 16 at once), so one user runs at most ``AILAB_BENCHMARK_MAX_RUNNING`` at a time, waiting and
background runs together; one more is refused with 429 before anything is stored.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ailab.db.engine import Database
from ailab.db.repos import metrics as repo
from ailab.db.tables import BenchmarkRun, utcnow
from ailab.errors import AILabError, InvalidInput, NotFound, TooManyRunning
from ailab.providers.base import ChatMessage, ChatRequest, Provider
from ailab.providers.registry import ProviderRegistry
from ailab.providers.timing import GenerationTimer, error_label
from ailab.services.monitoring.benchmark_limits import (
    DEFAULT_PROMPT,
    MAX_CONCURRENCY,
    MAX_ITERATIONS,
    MAX_MODELS,
    MAX_PROMPT_CHARS,
    MAX_TOKENS,
)
from ailab.services.monitoring.monitor import default_model_id

log = logging.getLogger("ailab.benchmark")
RETRY_AFTER_S = 10.0  # a refused run's hint: benchmarks take seconds to minutes

# Called after each iteration with (model id, iterations done for it, iterations per model).
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class BenchmarkParams:
    """What to run; :meth:`validate` enforces the bounds (422 / CLI error beyond them)."""

    models: list[str] = field(default_factory=list)  # empty: the default model
    prompt: str = DEFAULT_PROMPT
    iterations: int = 3
    max_tokens: int = 64
    concurrency: int = 1
    temperature: float | None = None
    warmup: bool = True  # one untimed 1-token generation per model first (loads a local model)

    def validate(self) -> None:
        """Raise :class:`InvalidInput` naming the first field out of bounds."""
        checks = [
            (1 <= self.iterations <= MAX_ITERATIONS, f"iterations must be 1..{MAX_ITERATIONS}"),
            (1 <= self.concurrency <= MAX_CONCURRENCY, f"concurrency must be 1..{MAX_CONCURRENCY}"),
            (1 <= self.max_tokens <= MAX_TOKENS, f"max_tokens must be 1..{MAX_TOKENS}"),
            (len(self.models) <= MAX_MODELS, f"at most {MAX_MODELS} models per run"),
            (0 < len(self.prompt) <= MAX_PROMPT_CHARS, f"prompt must be 1..{MAX_PROMPT_CHARS} characters"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)


@dataclass(slots=True)
class Iteration:
    """One timed generation."""

    iteration: int
    ok: bool
    ttft_ms: float | None = None
    total_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_second: float | None = None
    error: str | None = None


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    result = repo.percentile_cont(ordered, fraction)
    return 0.0 if result is None else result


def describe(values: Sequence[float]) -> dict[str, float] | None:
    """mean, p50, p95, min, max of ``values`` (None when empty), rounded to 3 decimals."""
    if not values:
        return None
    stats = {
        "mean": statistics.fmean(values),
        "p50": _percentile(values, 0.5),
        "p95": _percentile(values, 0.95),
        "min": min(values),
        "max": max(values),
    }
    return {k: round(v, 3) for k, v in stats.items()}


def aggregate(iterations: Sequence[Iteration], wall_s: float) -> dict[str, Any]:
    """The per-model aggregates of a list of iterations."""
    good = [it for it in iterations if it.ok]
    return {
        "iterations": len(iterations),
        "succeeded": len(good),
        "failed": len(iterations) - len(good),
        "ttft_ms": describe([it.ttft_ms for it in good if it.ttft_ms is not None]),
        "total_ms": describe([it.total_ms for it in good]),
        "tokens_per_second": describe([it.tokens_per_second for it in good if it.tokens_per_second]),
        "completion_tokens": sum(it.completion_tokens for it in good),
        "total_time_s": round(wall_s, 3),
    }


class BenchmarkService:
    """Runs benchmarks (waiting or in the background) and reads stored runs."""

    def __init__(self, db: Database, providers: ProviderRegistry, *, max_running: int = 2) -> None:
        self.db = db
        self.providers = providers
        self.max_running = max_running
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: Counter[str | None] = Counter()  # runs in progress per owner

    async def resolve_models(self, params: BenchmarkParams) -> list[tuple[str, Provider, str]]:
        """``(model id, provider, provider's model name)`` per model; unknown models raise at once."""
        ids = params.models or [await default_model_id(self.providers)]
        resolved = []
        for model_id in dict.fromkeys(ids):  # de-duplicated, order kept
            provider, name = self.providers.resolve(model_id)
            resolved.append((model_id, provider, name))
        return resolved

    async def _prepare(
        self, params: BenchmarkParams, owner_id: str | None
    ) -> tuple[BenchmarkRun, list[tuple[str, Provider, str]]]:
        params.validate()
        if self._running[owner_id] >= self.max_running:
            raise TooManyRunning(
                f"{self._running[owner_id]} of your benchmarks are running (at most {self.max_running}): "
                "wait for one to finish",
                RETRY_AFTER_S,
            )
        models = await self.resolve_models(params)
        stored = {**asdict(params), "models": [m[0] for m in models]}
        async with self.db.write() as session:
            row = await repo.create_run(session, run_id=str(uuid.uuid4()), owner_id=owner_id, params=stored)
        return row, models

    async def run(
        self,
        params: BenchmarkParams,
        *,
        owner_id: str | None,
        on_progress: ProgressCallback | None = None,
    ) -> BenchmarkRun:
        """Run a benchmark to the end, store it and return the stored run."""
        row, models = await self._prepare(params, owner_id)
        self._running[owner_id] += 1
        try:
            await self._execute(row.id, params, models, on_progress)
        finally:
            self._finished(owner_id)
        return await self.get(row.id, owner_id, include_ownerless=owner_id is None)

    async def start(self, params: BenchmarkParams, *, owner_id: str | None) -> str:
        """Store a run and execute it in a background task; returns its id at once."""
        row, models = await self._prepare(params, owner_id)
        task = asyncio.create_task(self._execute(row.id, params, models, None), name=f"benchmark-{row.id}")
        self._running[owner_id] += 1
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._finished(owner_id))
        return row.id

    def _finished(self, owner_id: str | None) -> None:
        self._running[owner_id] -= 1
        if self._running[owner_id] <= 0:
            del self._running[owner_id]

    async def get(
        self, run_id: str, owner_id: str | None, *, include_ownerless: bool = False
    ) -> BenchmarkRun:
        """A run ``owner_id`` may see (NotFound otherwise, also for another user's run)."""
        async with self.db.read() as session:
            row = await repo.get_run(session, run_id, owner_id, include_ownerless=include_ownerless)
        if row is None:
            raise NotFound(f"no benchmark run {run_id!r}")
        return row

    async def list_runs(
        self, owner_id: str | None, *, limit: int = 50, include_ownerless: bool = False
    ) -> Sequence[BenchmarkRun]:
        """The newest runs ``owner_id`` may see."""
        async with self.db.read() as session:
            rows = await repo.list_runs(session, owner_id, limit=limit, include_ownerless=include_ownerless)
        return rows

    async def aclose(self) -> None:
        """Cancel unfinished background runs (each marks itself ``error``)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Execution -------------------------------------------------------------------------------------

    async def _execute(
        self,
        run_id: str,
        params: BenchmarkParams,
        models: list[tuple[str, Provider, str]],
        on_progress: ProgressCallback | None,
    ) -> None:
        results: list[dict[str, Any]] = []
        status, error = "error", None
        try:
            for model_id, provider, name in models:
                results.append(await self._run_model(model_id, provider, name, params, on_progress))
            if any(r["aggregate"]["succeeded"] for r in results):
                status = "done"
            else:
                error = "every iteration failed"
        except asyncio.CancelledError:
            error = "cancelled before the run finished (client gone or server shutting down)"
            raise
        except Exception as exc:
            log.exception("benchmark %s failed", run_id)
            error = exc.message if isinstance(exc, AILabError) else f"internal error: {type(exc).__name__}"
        finally:
            await asyncio.shield(self._finish(run_id, status, results, error))

    async def _finish(
        self, run_id: str, status: str, results: list[dict[str, Any]], error: str | None
    ) -> None:
        async with self.db.write() as session:
            await repo.finish_run(
                session, run_id, status=status, results={"models": results}, error=error, finished_at=utcnow()
            )

    async def _run_model(
        self,
        model_id: str,
        provider: Provider,
        name: str,
        params: BenchmarkParams,
        on_progress: ProgressCallback | None,
    ) -> dict[str, Any]:
        gate = asyncio.Semaphore(params.concurrency)
        done = 0

        async def one(index: int) -> Iteration:
            nonlocal done
            async with gate:
                result = await self._iteration(index, provider, name, params)
            done += 1
            if on_progress is not None:
                on_progress(model_id, done, params.iterations)
            return result

        if params.warmup:
            await self._warmup(provider, name, params)
        started = time.perf_counter()
        iterations = await asyncio.gather(*(one(i + 1) for i in range(params.iterations)))
        wall = time.perf_counter() - started
        return {
            "model": model_id,
            "iterations": [asdict(it) for it in iterations],
            "aggregate": aggregate(iterations, wall),
        }

    async def _warmup(self, provider: Provider, name: str, params: BenchmarkParams) -> None:
        """One untimed, unrecorded 1-token generation; a failure here shows in the timed iterations."""
        request = ChatRequest(model=name, messages=[ChatMessage("user", params.prompt)], max_tokens=1)
        try:
            async for _ in provider.stream(request):
                pass
        except Exception as exc:  # noqa: BLE001 - reported by the iterations themselves
            log.info("benchmark warm-up of %s/%s failed: %s", provider.name, name, type(exc).__name__)

    async def _iteration(
        self, index: int, provider: Provider, name: str, params: BenchmarkParams
    ) -> Iteration:
        request = ChatRequest(
            model=name,
            messages=[ChatMessage("user", params.prompt)],
            max_tokens=params.max_tokens,
            temperature=params.temperature,
        )
        timer = GenerationTimer(self.providers, provider.name, name or "default", stream=True)
        try:
            async for chunk in provider.stream(request):
                timer.take(chunk)
        except Exception as exc:  # noqa: BLE001 - a broken backend fails the iteration, not the run
            timer.finish(exc)
            message = exc.message if isinstance(exc, AILabError) else "internal error"
            return Iteration(
                iteration=index,
                ok=False,
                total_ms=round(timer.duration_s * 1000, 3),
                error=f"{error_label(exc)}: {message}",
            )
        timer.finish()
        usage, total, ttft = timer.final_usage, timer.duration_s, timer.ttft_s
        return Iteration(
            iteration=index,
            ok=True,
            ttft_ms=None if ttft is None else round(ttft * 1000, 3),
            total_ms=round(total * 1000, 3),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            tokens_per_second=round(usage.completion_tokens / total, 3)
            if total > 0 and usage.completion_tokens
            else None,
        )
