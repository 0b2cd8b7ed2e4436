"""Monitoring routes: ``GET /metrics`` (JSON), ``GET /metrics/history``, ``GET /metrics/prometheus``,
``GET /performance/summary`` and ``GET /performance/history``.

``/metrics``, ``/metrics/history`` and ``/metrics/prometheus`` are admin-only: they describe the machine
and every user's traffic. Prometheus scrapes with an API token of an admin (``authorization:
{credentials: <token>}`` in the scrape config). They serve the background sampler's readings, so they
never measure on the request path. ``/performance/summary`` and ``/performance/history`` give aggregates
only and are open to every signed-in user.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ailab.api.deps import AdminUser, ServicesDep
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.monitoring import PerformanceHistory, PerformanceSummary, SystemHistory, SystemMetrics
from ailab.metrics import PROMETHEUS_CONTENT_TYPE

router = APIRouter(tags=["monitoring"], responses=problems(*COMMON_PROBLEMS))


@router.get("/metrics")
async def system_metrics(_admin: AdminUser, services: ServicesDep) -> SystemMetrics:
    """CPU, memory, disk, process RSS, DB connections, uptime and GPUs (NVML), from the last sample."""
    return SystemMetrics.model_validate(await services.monitor.snapshot())


@router.get("/metrics/history")
async def system_history(_admin: AdminUser, services: ServicesDep) -> SystemHistory:
    """CPU, memory and GPUs of the last ten minutes, one reading every few seconds, oldest first."""
    return SystemHistory.model_validate(await services.monitor.system_history())


@router.get(
    "/metrics/prometheus",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "exposition"}},
)
async def prometheus_metrics(_admin: AdminUser, services: ServicesDep) -> Response:
    """The Prometheus text exposition (all worker processes merged)."""
    return Response(await services.monitor.prometheus(), media_type=PROMETHEUS_CONTENT_TYPE)


@router.get("/performance/summary")
async def performance_summary(
    services: ServicesDep,
    hours: Annotated[float, Query(gt=0, le=24 * 366, description="window, in hours back from now")] = 24,
) -> PerformanceSummary:
    """Count, error rate and p50/p95/p99 (ms) per endpoint, model and function over the window."""
    return PerformanceSummary.model_validate(await services.monitor.summary(hours))


@router.get("/performance/history")
async def performance_history(
    services: ServicesDep,
    hours: Annotated[int, Query(ge=1, le=720, description="window, in hours back from now")] = 24,
    buckets: Annotated[int, Query(ge=1, le=500, description="the most time buckets per series")] = 48,
) -> PerformanceHistory:
    """Per route and per model, p50/p95/p99 (ms) per time bucket, and for models the median time to first
    token and tokens/s; buckets without samples are left out."""
    return PerformanceHistory.model_validate(await services.monitor.performance_history(hours, buckets))
