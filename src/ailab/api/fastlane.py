"""The gateway's fast lane: ``/v1/chat/completions`` and ``/v1/models`` without FastAPI's routing.

The OpenAI-compatible routes are the hot path (the gateway should add well under a millisecond). For
them, route matching, dependency resolution and FastAPI's exception stack cost more than the work
itself, so this middleware matches the two exact paths first, authenticates the caller with the same
:func:`~ailab.api.deps.authenticate` the protected router uses, and calls the very same endpoint
functions (``api/routes/gateway.py``), which stay registered with FastAPI for the OpenAPI document.
Every other request passes through untouched. Errors go to the app's own exception handlers, so they
answer exactly as on the routed path (OpenAI's shape under ``/v1``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ailab.api.deps import authenticate
from ailab.api.routes import gateway
from ailab.services.container import Services

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class _Route:
    """Stands in for the matched route, so the access log and metrics see its template."""

    path: str
    endpoint: Endpoint


_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/v1/chat/completions"): _Route("/v1/chat/completions", gateway.chat_completions),
    ("GET", "/v1/models"): _Route("/v1/models", gateway.list_models),
}


def _authorization(scope: Scope) -> tuple[str | None, str | None]:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            return scheme, credential.strip()
    return None, None


class GatewayFastLane:
    """Serves the two gateway routes directly; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            _ROUTES.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        services: Services = scope["app"].state.services
        request = Request(scope, receive)
        try:
            await authenticate(services, *_authorization(scope))
            response = await route.endpoint(request)
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # answered as a 500 by RequestContextMiddleware
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The app's own handler for ``exc`` (the most specific class wins), as FastAPI would pick it."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
