"""Public status routes: ``/``, ``/health``, ``/health/live``, ``/health/ready``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ailab import __version__
from ailab.api.deps import MaybeUser, ServicesDep
from ailab.api.routes import web
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.health import About, Health, Live, Ready

router = APIRouter(tags=["health"], responses=problems(*COMMON_PROBLEMS))
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


@router.get("/", response_model=About)
async def root(request: Request) -> Response:
    """Name, version and features of this server (a browser asking for HTML gets the web UI)."""
    if web.wants_page(request):
        return web.page()
    return JSONResponse(
        About(name="AI-Lab", version=__version__, features=FEATURES, docs="/docs").model_dump()
    )


@router.get("/health/live")
async def live() -> Live:
    """The process answers."""
    return Live(status="alive")


@router.get("/health/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(services: ServicesDep) -> JSONResponse:
    """Ready only when the database answers (503 otherwise)."""
    try:
        await services.db.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ready", "database": "connected"})


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(caller: MaybeUser, services: ServicesDep) -> JSONResponse:
    """For admins: the database, its pool, the default model and a metrics summary, checked now.

    For anyone else: a ready flag for the server, its database and its default model, from a check made
    at most every few seconds (no detail that could name an internal host). 503 while the database is
    unreachable.
    """
    checks = services.health
    report = await (checks.details() if caller is not None and caller.is_admin else checks.public())
    body = Health.model_validate(report.body).model_dump(mode="json", exclude_unset=True)
    return JSONResponse(body, status_code=report.status_code)
