"""The LLM benchmark: ``POST /benchmark/llm``, ``GET /benchmark/runs``, ``GET /benchmark/runs/{id}``.

``POST /benchmark/llm`` takes the seed's query parameters (``model_name``, ``prompt``, ``iterations``)
plus ``models`` (repeatable), ``max_tokens``, ``concurrency``, ``temperature``, ``warmup`` (default on)
and ``background``, or the same fields as a JSON body (a field given in both places takes the body's
value). It waits and answers the stored run; with ``background=true`` it answers 202 ``{"id"}`` at once.
Users see their own runs; admins also see the runs made with ``ai-lab bench`` (which belong to nobody).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.api.schemas.benchmark import BenchmarkBody, RunList, RunOut, RunStarted
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.services.monitoring.benchmark import BenchmarkParams
from ailab.services.monitoring.benchmark_limits import (
    DEFAULT_PROMPT,
    MAX_CONCURRENCY,
    MAX_ITERATIONS,
    MAX_MODELS,
    MAX_PROMPT_CHARS,
    MAX_TOKENS,
)

router = APIRouter(tags=["benchmark"], responses=problems(*COMMON_PROBLEMS, 404, 502, 504))


@router.post("/benchmark/llm", response_model=RunOut, responses={202: {"model": RunStarted}})
async def benchmark_llm(
    *,
    user: CurrentUser,
    services: ServicesDep,
    body: BenchmarkBody | None = None,
    model_name: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    models: Annotated[list[str] | None, Query(max_length=MAX_MODELS)] = None,
    prompt: Annotated[str | None, Query(min_length=1, max_length=MAX_PROMPT_CHARS)] = None,
    iterations: Annotated[int, Query(ge=1, le=MAX_ITERATIONS)] = 3,
    max_tokens: Annotated[int, Query(ge=1, le=MAX_TOKENS)] = 64,
    concurrency: Annotated[int, Query(ge=1, le=MAX_CONCURRENCY)] = 1,
    temperature: Annotated[float | None, Query(ge=0, le=2)] = None,
    warmup: bool = True,
    background: bool = False,
) -> RunOut | JSONResponse:
    """Time to first token, total time and tokens/s per iteration and per model."""
    b = body or BenchmarkBody()
    chosen: list[str] = [*(models or []), *(b.models or [])]
    for single in (b.model_name, model_name):
        if single and single not in chosen:
            chosen.insert(0, single)
    params = BenchmarkParams(
        models=chosen,
        prompt=b.prompt or prompt or DEFAULT_PROMPT,
        iterations=b.iterations or iterations,
        max_tokens=b.max_tokens or max_tokens,
        concurrency=b.concurrency or concurrency,
        temperature=b.temperature if b.temperature is not None else temperature,
        warmup=b.warmup if b.warmup is not None else warmup,
    )
    services.usage.check(user.id, user.token_id, chosen[0] if chosen else "")  # generations are usage too
    if b.background if b.background is not None else background:
        run_id = await services.benchmarks.start(params, owner_id=user.id)
        return JSONResponse(RunStarted(id=run_id).model_dump(), status_code=202)
    return RunOut.model_validate(await services.benchmarks.run(params, owner_id=user.id))


@router.get("/benchmark/runs")
async def list_runs(
    user: CurrentUser, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> RunList:
    """Past runs, newest first."""
    rows = await services.benchmarks.list_runs(user.id, limit=limit, include_ownerless=user.is_admin)
    return RunList(items=[RunOut.model_validate(r) for r in rows])


@router.get("/benchmark/runs/{run_id}")
async def get_run(
    user: CurrentUser, services: ServicesDep, run_id: Annotated[str, Path(max_length=64)]
) -> RunOut:
    """One run (404 for an unknown id or another user's run)."""
    return RunOut.model_validate(
        await services.benchmarks.get(run_id, user.id, include_ownerless=user.is_admin)
    )
