"""The fast lane: the hot routes, answered ahead of the middleware stack and FastAPI's routing.

The OpenAI-compatible routes (the gateway should add well under a millisecond; embeddings too, since
retrieval embeds every chunk) and ``POST /chat`` (whose first token should come no later than about 1.2x
the model's own) are the hot paths. For them, each layer between the server and the handler costs more
than the work it does: every layer is a coroutine that each suspension of the request passes through
twice, and the stack had eight (measured: serving them here saved ~50 us of CPU per gateway request, a
fifth of it). So :class:`~ailab.app.AILabApp` hands a request whose exact method and path are a hot
route's to :class:`FastLane` before its middleware, and the lane does in one frame what the stack does in
several, with the stack's own functions: the request id, the body limit and the access log and request
observers (``api/middleware.py``), the guard (``api/guard.py``), the monitor and usage context; then it
authenticates the caller with the same :func:`~ailab.api.deps.authenticate_request` as the protected
routes and calls handlers that share their code with the routes registered with FastAPI (which stay there
for the OpenAPI document, and answer when the lane is off). Errors go to the app's own exception handlers,
so they answer exactly as on the routed path (OpenAI's shape under ``/v1``).

A handler may decline a request (a body it cannot read): the request then goes to the whole stack with
its body replayed, so validation errors are FastAPI's own, and the stack logs it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ailab.api.deps import authenticate_request
from ailab.api.guard import RequestGuard, send_refusal
from ailab.api.middleware import (
    MonitorContext,
    RequestObserver,
    answer_unexpected,
    body_past_limit,
    finish_request,
    read_body,
    read_request_headers,
    replay_body,
    send_too_large,
)
from ailab.api.routes import chat, gateway
from ailab.services.auth.accounts import Principal
from ailab.services.container import Services

Handler = Callable[[Request, Principal, bytes], Awaitable[Response | None]]  # the request, its caller, body
DECLINED = -1  # the status of a request a handler handed to the stack


@dataclass(frozen=True, slots=True)
class _Route:
    """Stands in for the matched route, so the access log and metrics see its template."""

    path: str
    handler: Handler


async def _chat_completions(request: Request, user: Principal, body: bytes) -> Response:
    return await gateway.answer_chat_completions(request, user, body)


async def _embeddings(request: Request, user: Principal, body: bytes) -> Response:
    return await gateway.answer_embeddings(request, user, body)


async def _models(request: Request, _user: Principal, _body: bytes) -> Response:
    return await gateway.list_models(request)


_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/v1/chat/completions"): _Route("/v1/chat/completions", _chat_completions),
    ("POST", "/v1/embeddings"): _Route("/v1/embeddings", _embeddings),
    ("GET", "/v1/models"): _Route("/v1/models", _models),
    ("POST", "/chat"): _Route("/chat", chat.chat_fast_lane),
}


def hot_route(scope: Scope) -> bool:
    """Whether ``scope`` is a request for one of the hot routes (its exact method and path)."""
    return scope["type"] == "http" and (scope["method"], scope["path"]) in _ROUTES


def _authorization(scope: Scope) -> tuple[str | None, str | None]:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            return scheme, credential.strip()
    return None, None


class FastLane:
    """Serves the hot routes (see the module docstring); ``stack`` is the app's whole middleware stack,
    for the requests a handler declines."""

    def __init__(
        self,
        stack: ASGIApp,
        *,
        max_body_bytes: int,
        guard: RequestGuard,
        observers: list[RequestObserver],
    ) -> None:
        self.stack = stack
        self.max_body_bytes = max_body_bytes
        self.guard = guard
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        route = _ROUTES[(scope["method"], scope["path"])]
        request_id, content_length = read_request_headers(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False
        try:
            limit = self.max_body_bytes
            receive, too_large = await body_past_limit(scope, receive, content_length, limit)
            if too_large:
                status = 413
                await send_too_large(send, limit, request_id)
                return
            refusal = self.guard.refusal(scope)
            if refusal is not None:
                status = refusal[0]
                await send_refusal(scope, send, refusal, request_id)
                return
            scope["route"] = route  # past the limit and the guard, as routing comes after them in the stack
            services: Services = scope["app"].state.services
            request = Request(scope, receive)
            with MonitorContext(services):
                response, body = await self._answer(route, services, request, scope)
                if response is None:  # declined: the whole stack answers, from the body read here
                    status, started = DECLINED, True
                    await self.stack(scope, replay_body(body, receive), send)
                    return
                status = response.status_code
                response.raw_headers.append((b"x-request-id", request_id.encode()))
                started = True
                await response(scope, receive, send)
        except Exception as exc:
            if started:
                raise  # too late for an error answer; the server closes the connection
            status = 500
            await answer_unexpected(scope, send, request_id, exc)
        finally:
            if status != DECLINED:  # the stack logs a declined request itself
                finish_request(self.observers, scope, request_id, status, time.perf_counter() - start)

    @staticmethod
    async def _answer(
        route: _Route, services: Services, request: Request, scope: Scope
    ) -> tuple[Response | None, bytes]:
        """The handler's response (or the app's own handler's answer to what it raised) and the body."""
        body = b""
        try:
            user = await authenticate_request(services, request, *_authorization(scope))
            body = await read_body(request.receive)
            return await route.handler(request, user, body), body
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # answered as a 500 by the lane
            response: Response = await handler(request, exc)
            return response, body


def _handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The app's own handler for ``exc`` (the most specific class wins), as FastAPI would pick it."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
