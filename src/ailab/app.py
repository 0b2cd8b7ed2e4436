"""The ASGI application: ``create_app(settings)`` wires middleware, routes and the services' lifespan.

At start the lifespan migrates the database (under a lock, so several workers or replicas can start at
once), builds the services and makes sure an admin exists. At shutdown (SIGTERM: uvicorn first lets the
in-flight requests finish) it stops background work and closes the database pool.

Once started, the objects start-up made (modules, routes, schemas, services: ~280,000) are frozen out
of the cyclic garbage collector (``gc.freeze``): they live as long as the server, and without this each
full collection under load walked all of them, a pause of ~180 ms on a small server. They are given back
at shutdown, so an app started and stopped in a longer-lived process (the tests) leaves nothing frozen.
The young generation is collected every ``YOUNG_GC_THRESHOLD`` net allocations instead of 700: with many
requests in flight, each collection walked their live objects and promoted them, to die in an older
generation; ~3% fewer instructions per gateway request (``bench/instructions.py``), for a few MB more
of cyclic garbage at most. Both are put back when the process's last app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from ailab import __version__
from ailab.api import openapi, routes
from ailab.api.deps import require_user
from ailab.api.errors import install_error_handlers
from ailab.api.fastlane import FastLane, hot_route
from ailab.api.guard import RequestGuard
from ailab.api.middleware import (
    MonitorContextMiddleware,
    RequestContextMiddleware,
    RequestObserver,
    RequestRecord,
)
from ailab.config import Settings, get_settings
from ailab.db.migrate import upgrade
from ailab.services.container import build_services

log = logging.getLogger("ailab")
YOUNG_GC_THRESHOLD = 10_000  # net allocations between young collections (CPython: 700); see the docstring


class _CollectorPace:
    """The garbage collector's settings while an app of this process runs (see the module docstring);
    counted, since the tests run several apps at once: the last one to stop puts them back."""

    def __init__(self) -> None:
        self.running = 0
        self.saved = gc.get_threshold()

    def start(self) -> None:
        # No gc.collect() first: in a process with a larger heap (the tests') it costs more than start-up.
        gc.freeze()
        if self.running == 0:
            self.saved = gc.get_threshold()
            gc.set_threshold(YOUNG_GC_THRESHOLD, *self.saved[1:])
        self.running += 1

    def stop(self) -> None:
        self.running -= 1
        if self.running == 0:
            gc.set_threshold(*self.saved)
            gc.unfreeze()


_COLLECTOR = _CollectorPace()


class AILabApp(FastAPI):
    """FastAPI, with the hot routes answered ahead of the middleware stack by the fast lane
    (``api/fastlane.py``) when it has one."""

    fast_lane: FastLane | None = None
    _lane_entry: ASGIApp | None = None  # the lane, inside CORS when CORS is open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A hot route to the fast lane; everything else (and lifespan) to FastAPI and its middleware."""
        if self._lane_entry is not None and hot_route(scope):
            scope["app"] = self  # what FastAPI sets first, for Request.app and the handlers
            await self._lane_entry(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The middleware stack and the routes, for a request the fast lane hands back."""
        await super().__call__(scope, receive, send)

    def open_fast_lane(self, lane: FastLane, cors: dict[str, Any] | None) -> None:
        """Serve the hot routes with ``lane``; ``cors``: CORSMiddleware's options when CORS is open, so
        the hot routes answer browsers like every other route."""
        self.fast_lane = lane
        self._lane_entry = lane if cors is None else CORSMiddleware(lane, **cors)


def create_app(settings: Settings, *, migrate: bool = True, fast_lane: bool = True) -> AILabApp:
    """Build the application for ``settings``; nothing touches the database until it starts.

    ``fast_lane=False`` leaves the hot routes to FastAPI's router: the tests run them both ways, so the
    routed handlers and the fast lane cannot drift apart unnoticed.
    """
    settings.check_startable()
    observers: list[RequestObserver] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_data_dir()
        if migrate:
            await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
        services = await build_services(settings)
        app.state.services = services
        app.state.request_observers = observers

        def observe(record: RequestRecord) -> None:
            services.monitor.observe_request(record.method, record.route, record.status, record.duration_s)

        observers.append(observe)
        paced = False
        try:
            # A database whose keys the master key cannot open must not serve (ai-lab serve checks first).
            await services.vault.verify_master_key()
            password_file = await services.auth.ensure_admin()
            if password_file is not None:
                log.warning("created user 'admin'; its password is in %s (mode 0600)", password_file)
            _COLLECTOR.start()
            paced = True
            yield
        finally:
            if paced:
                _COLLECTOR.stop()
            observers.remove(observe)
            await services.aclose()

    app = AILabApp(
        title="AI-Lab",
        version=__version__,
        summary="Self-hosted AI workbench: chat sessions, agents, model backends, OpenAI-compatible API.",
        lifespan=lifespan,
        docs_url=None,  # served by api/routes/web.py from this package's files, not from a CDN
        # FastAPI's OpenTelemetry hooks ask for a configured provider on every request (2-2.5% of the
        # gateway's CPU per request); AI-Lab's monitoring is its own (Prometheus, performance history).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    openapi.install(app)
    _add_routes(app)

    auth_off = settings.auth == "off"
    app.add_middleware(RequestGuard, auth_off=auth_off, cors_origins=settings.cors_origins)
    cors: dict[str, Any] | None = None
    if settings.cors_origins:
        cors = {
            "allow_origins": settings.cors_origins,
            "allow_credentials": True,
            "allow_methods": ["*"],
            "allow_headers": ["*"],
        }
        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(MonitorContextMiddleware)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        observers=observers,
        uploads=("/files", settings.max_upload_bytes),
    )
    if fast_lane:
        # The guard's rules, asked by the lane; the lane answers their refusals itself.
        guard = RequestGuard(app.stack, auth_off=auth_off, cors_origins=settings.cors_origins)
        lane = FastLane(app.stack, max_body_bytes=settings.max_body_bytes, guard=guard, observers=observers)
        app.open_fast_lane(lane, cors)
    return app


@functools.cache
def _route_tree() -> APIRouter:
    """Every route, the protected ones behind :func:`require_user`: one tree per process."""
    tree = APIRouter()
    for router in routes.PUBLIC:
        tree.include_router(router)
    protected = APIRouter(dependencies=[Depends(require_user)])
    for router in routes.PROTECTED:
        protected.include_router(router)
    tree.include_router(protected)
    return tree


_included_tree: list[BaseRoute] = []  # the node that including the tree added to the first app


def _add_routes(app: FastAPI) -> None:
    """Give ``app`` every route.

    FastAPI (0.16x) works out each route's parameters and models for each inclusion of a router, lazily
    (about a millisecond per route: 0.1-0.5 s per app, which a server's first request waited for and which
    the tests, building hundreds of apps, paid for each). That work lives in the node the inclusion adds,
    and depends only on the tree and on router settings every app here shares (no prefix, no dependency
    overrides); so it is done once, when the first app is built, and later apps get that same node. With a
    FastAPI that adds no such node (other versions), every app includes the tree itself.
    """
    router = app.router
    if _included_tree and hasattr(router, "_mark_routes_changed"):
        router.routes.extend(_included_tree)
        router._mark_routes_changed()
        return
    before = len(router.routes)
    router.include_router(_route_tree())
    with contextlib.suppress(NoMatchFound):  # a walk over every route: done now, not in a first request
        router.url_path_for("-")
    added = router.routes[before:]
    if len(added) == 1 and type(added[0]).__name__ == "_IncludedRouter":
        _included_tree[:] = added


def app_factory() -> AILabApp:
    """Entry point for ``uvicorn --factory`` and worker processes: settings from the environment."""
    return create_app(get_settings())
