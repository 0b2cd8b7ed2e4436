"""The fast lane: the hot routes without FastAPI's routing.

The OpenAI-compatible routes (the gateway should add well under a millisecond; embeddings too, since
retrieval embeds every chunk) and ``POST /chat`` (whose
first token should come no later than about 1.2x the model's own) are the hot paths. For them, route
matching, dependency resolution and FastAPI's exception stack cost more than the work itself, so this
middleware matches their exact paths first, authenticates the caller with the same
:func:`~ailab.api.deps.authenticate` the protected router uses, and calls handlers that share their code
with the routes registered with FastAPI (which stay there for the OpenAPI document). Every other request
passes through untouched. Errors go to the app's own exception handlers, so they answer exactly as on the
routed path (OpenAI's shape under ``/v1``). A handler may decline a request (a body it cannot read): the
request then goes on to FastAPI with its body replayed, so validation errors are FastAPI's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ailab.api.deps import authenticate_request
from ailab.api.routes import chat, gateway
from ailab.services.auth.accounts import Principal
from ailab.services.container import Services

Handler = Callable[[Request, Principal], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True)
class _Route:
    """Stands in for the matched route, so the access log and metrics see its template."""

    path: str
    handler: Handler


async def _chat_completions(request: Request, user: Principal) -> Response:
    return await gateway.answer_chat_completions(request, user)


async def _embeddings(request: Request, user: Principal) -> Response:
    return await gateway.answer_embeddings(request, user)


async def _models(request: Request, _user: Principal) -> Response:
    return await gateway.list_models(request)


_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/v1/chat/completions"): _Route("/v1/chat/completions", _chat_completions),
    ("POST", "/v1/embeddings"): _Route("/v1/embeddings", _embeddings),
    ("GET", "/v1/models"): _Route("/v1/models", _models),
    ("POST", "/chat"): _Route("/chat", chat.chat_fast_lane),
}


def _authorization(scope: Scope) -> tuple[str | None, str | None]:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            return scheme, credential.strip()
    return None, None


class FastLane:
    """Serves the hot routes (the gateway's and POST /chat) directly; passes the rest on."""

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
            user = await authenticate_request(services, request, *_authorization(scope))
            response = await route.handler(request, user)
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # answered as a 500 by RequestContextMiddleware
            response = await handler(request, exc)
        if response is None:  # declined: FastAPI answers, from the body the handler has read
            await self.app(scope, _replay(await request.body(), receive), send)
            return
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` first, then whatever the client sends next (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The app's own handler for ``exc`` (the most specific class wins), as FastAPI would pick it."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
