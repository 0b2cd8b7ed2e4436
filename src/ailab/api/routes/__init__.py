"""Route modules. ``PUBLIC`` routers answer anonymous requests; every other router is in ``PROTECTED``
and mounted behind authentication by ``create_app``. Add a new router to ``PROTECTED`` unless the
contract lists it as public."""

from __future__ import annotations

from fastapi import APIRouter

from ailab.api.routes import (
    auth,
    benchmark,
    chat,
    conversation,
    files,
    gateway,
    health,
    keys,
    metrics,
    models,
    pipelines,
    runs,
    sessions,
    usage,
    users,
    web,
)

PUBLIC: list[APIRouter] = [health.router, auth.router, web.router]
PROTECTED: list[APIRouter] = [
    gateway.router,  # first: the hot path, matched before every other protected route
    sessions.router,
    conversation.router,
    keys.router,
    auth.protected_router,
    users.router,
    chat.router,
    runs.router,
    files.router,
    metrics.router,
    benchmark.router,
    pipelines.router,
    usage.router,
    models.router,
]
