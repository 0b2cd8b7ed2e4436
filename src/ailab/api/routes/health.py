"""Public status routes: ``/``, ``/health``, ``/health/live``, ``/health/ready``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ailab import __version__
from ailab.api.deps import ServicesDep

router = APIRouter(tags=["health"])
FEATURES = [
    "chat sessions",
    "agent pipelines",
    "token streaming",
    "model backends as plugins",
    "OpenAI-compatible API",
    "encrypted API key vault",
    "monitoring",
    "LLM benchmark",
    "v2 import",
]


@router.get("/")
async def root() -> dict[str, Any]:
    """Name, version and features of this server."""
    return {"name": "AI-Lab", "version": __version__, "features": FEATURES, "docs": "/docs"}


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "alive"}


@router.get("/health/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    """Ready only when the database answers (503 otherwise)."""
    try:
        await services.db.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ready", "database": "connected"})


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    """Overall health: the database, the default model and a metrics summary."""
    try:
        await services.db.ping()
        database = "connected"
    except Exception:  # noqa: BLE001 - reported, not raised
        database = "unreachable"
    body: dict[str, Any] = {
        "status": "healthy" if database == "connected" else "unhealthy",
        "version": __version__,
        "database": database,
        "database_pool": services.db.pool_status(),
    }
    for name, probe in services.health_probes.items():
        body[name] = await probe()
    return JSONResponse(body, status_code=200 if database == "connected" else 503)
