"""``ai-lab bench``: the LLM benchmark of ``POST /benchmark/llm`` from the command line.

Runs the same engine (``services/monitoring/benchmark.py``) on this machine's providers, shows a progress bar,
prints a table per model and stores the run (it belongs to no user; admins see it in the API).
Exit code 1 when every iteration failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ailab.cli.common import console, fail, run_with_services
from ailab.services.monitoring.benchmark_limits import (
    DEFAULT_PROMPT,
    MAX_CONCURRENCY,
    MAX_ITERATIONS,
    MAX_TOKENS,
)

if TYPE_CHECKING:
    from ailab.db.tables import BenchmarkRun
    from ailab.services.container import Services


def _fmt(stats: dict[str, float] | None, key: str) -> str:
    return "-" if not stats else f"{stats[key]:.1f}"


def results_table(run: BenchmarkRun) -> Table:
    """One row per model: TTFT and tokens/s (mean, p50, p95), successes, wall time."""
    table = Table(title=f"benchmark {run.id}")
    for column in (
        "model",
        "ok",
        "TTFT mean ms",
        "TTFT p50",
        "TTFT p95",
        "tok/s mean",
        "tok/s p50",
        "tok/s p95",
        "tokens",
        "wall s",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for result in run.results.get("models", []):
        agg = result["aggregate"]
        ttft, tps = agg["ttft_ms"], agg["tokens_per_second"]
        table.add_row(
            result["model"],
            f"{agg['succeeded']}/{agg['iterations']}",
            _fmt(ttft, "mean"),
            _fmt(ttft, "p50"),
            _fmt(ttft, "p95"),
            _fmt(tps, "mean"),
            _fmt(tps, "p50"),
            _fmt(tps, "p95"),
            str(agg["completion_tokens"]),
            f"{agg['total_time_s']:.2f}",
        )
    return table


def bench(
    *,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="model id, e.g. local/smollm2-135m-instruct (repeatable; default model if none)",
        ),
    ] = None,
    warmup: bool = typer.Option(True, help="one untimed generation per model first"),
    iterations: int = typer.Option(3, min=1, max=MAX_ITERATIONS, help="generations per model"),
    concurrency: int = typer.Option(1, min=1, max=MAX_CONCURRENCY, help="generations in flight at once"),
    prompt: str = typer.Option(DEFAULT_PROMPT, help="the prompt"),
    max_tokens: int = typer.Option(
        64, "--max-tokens", min=1, max=MAX_TOKENS, help="tokens per answer at most"
    ),
) -> None:
    """Benchmark models: time to first token and tokens per second, side by side."""
    from ailab.services.monitoring.benchmark import BenchmarkParams

    params = BenchmarkParams(
        models=model or [],
        prompt=prompt,
        iterations=iterations,
        max_tokens=max_tokens,
        concurrency=concurrency,
        warmup=warmup,
    )

    async def main(services: Services) -> BenchmarkRun:
        models = await services.benchmarks.resolve_models(params)  # unknown model: clean error first
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            tasks = {m[0]: progress.add_task(m[0], total=iterations) for m in models}

            def on_progress(model_id: str, done: int, _total: int) -> None:
                progress.update(tasks[model_id], completed=done)

            with services.monitor.activate():
                return await services.benchmarks.run(params, owner_id=None, on_progress=on_progress)

    run = run_with_services(main)
    console.print(results_table(run))
    for result in run.results.get("models", []):
        for it in result["iterations"]:
            if not it["ok"]:
                console.print(f"[yellow]{result['model']} iteration {it['iteration']}:[/] {it['error']}")
    if run.status != "done":
        fail(run.error or "the benchmark failed")
    console.print(f"stored as benchmark run {run.id}")
