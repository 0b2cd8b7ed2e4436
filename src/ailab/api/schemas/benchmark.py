"""``/benchmark``: LLM runs and their statistics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from ailab.api.schemas.common import Out, Timestamp
from ailab.services.monitoring.benchmark_limits import (
    MAX_CONCURRENCY,
    MAX_ITERATIONS,
    MAX_MODELS,
    MAX_PROMPT_CHARS,
    MAX_TOKENS,
)

ModelId = Annotated[str, Field(min_length=1, max_length=255)]


class BenchmarkBody(BaseModel):
    model_name: str | None = Field(None, min_length=1, max_length=255)
    models: list[ModelId] | None = Field(None, max_length=MAX_MODELS)
    prompt: str | None = Field(None, min_length=1, max_length=MAX_PROMPT_CHARS)
    iterations: int | None = Field(None, ge=1, le=MAX_ITERATIONS)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    concurrency: int | None = Field(None, ge=1, le=MAX_CONCURRENCY)
    temperature: float | None = Field(None, ge=0, le=2)
    warmup: bool | None = None
    background: bool | None = None


class Stats(BaseModel):
    """One measure over the iterations that succeeded, rounded to 3 decimals."""

    mean: float
    p50: float
    p95: float
    min: float
    max: float


class Aggregate(BaseModel):
    """One model's iterations summarised (a measure is None when no iteration gave it)."""

    iterations: int
    succeeded: int
    failed: int
    ttft_ms: Stats | None
    total_ms: Stats | None
    tokens_per_second: Stats | None
    completion_tokens: int
    total_time_s: float


class IterationOut(BaseModel):
    """One timed generation."""

    iteration: int
    ok: bool
    ttft_ms: float | None = None
    total_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_second: float | None = None
    error: str | None = None


class ModelResult(BaseModel):
    """One model's run: each iteration, and their aggregate."""

    model: str
    iterations: list[IterationOut]
    aggregate: Aggregate


class RunOut(Out):
    """A stored benchmark run."""

    id: str
    status: Literal["running", "done", "error"]
    params: dict[str, Any] = Field(description="what was asked: models, prompt, iterations, ...")
    results: list[ModelResult] = Field(description="per model, in the order asked")
    error: str | None
    created_at: Timestamp
    finished_at: Timestamp | None

    @field_validator("results", mode="before")
    @classmethod
    def _stored(cls, value: Any) -> Any:
        return value.get("models", []) if isinstance(value, dict) else value  # stored as {"models": [...]}


class RunList(BaseModel):
    items: list[RunOut]


class RunStarted(BaseModel):
    """A run started in the background: poll ``GET /benchmark/runs/{id}``."""

    id: str
    status: Literal["running"] = "running"
