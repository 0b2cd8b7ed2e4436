"""``/``, ``/health``, ``/health/live``, ``/health/ready``: public status."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ailab.api.schemas.monitoring import PoolOut


class About(BaseModel):
    name: str
    version: str
    features: list[str]
    docs: str


class Live(BaseModel):
    status: Literal["alive"]


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["connected", "unreachable"]


class ModelHealth(BaseModel):
    """The default model: its id and whether its backend answers (admins see which and why)."""

    ready: bool
    id: str | None = None
    detail: str | None = None


class MetricsHealth(BaseModel):
    cpu_usage_percent: float | None
    memory_usage_percent: float | None
    process_rss_mb: float | None
    gpu_count: int | None
    uptime_seconds: float


class Health(BaseModel):
    """For anyone: ready or not. For admins also the pool, the default model's id and a metrics summary."""

    status: Literal["healthy", "unhealthy"]
    version: str
    database: Literal["connected", "unreachable"]
    model: ModelHealth | None = None
    database_pool: PoolOut | None = Field(None, description="admins only")
    metrics: MetricsHealth | None = Field(None, description="admins only")
