"""Pure ASGI middleware: request ids, the body size limit, the access log, request observers, and the
monitor context of ``@monitor_performance``.

Written against raw ASGI rather than ``BaseHTTPMiddleware`` so that streamed responses pass through
untouched and the per-request cost stays at a few microseconds (the gateway's budget is well under a
millisecond). The pieces are functions too: the fast lane (``api/fastlane.py``), which answers the hot
routes ahead of this stack, does each of these steps with the same code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ailab.api.errors import error_body, log_unexpected
from ailab.ids import new_request_id
from ailab.logs import ACCESS_LOG, looks_secret
from ailab.services.usage.attribution import end, unattributed

if TYPE_CHECKING:
    from ailab.services.container import Services

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
UPLOAD_FRAMING_BYTES = 128 * 1024  # a multipart body's boundaries, part headers and other fields


@dataclass(slots=True)  # made per request: see GenerationRecord on frozen
class RequestRecord:
    """What an observer learns about a finished request (no body, no query string)."""

    method: str
    route: str
    status: int
    duration_s: float
    request_id: str


RequestObserver = Callable[[RequestRecord], None]


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/sessions/{session_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


def read_request_headers(scope: Scope) -> tuple[str, int | None]:
    """The request's id (the client's ``X-Request-Id`` when it is a safe one, else a new one) and its
    declared ``Content-Length`` (None when it has none)."""
    request_id = ""
    content_length: int | None = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            # A credential pasted as an id would reach the logs unmasked (the access log is not filtered).
            good = _REQUEST_ID.match(candidate) and not looks_secret(candidate)
            request_id = candidate if good else ""
        elif name == b"content-length":
            content_length = int(value) if value.isdigit() else None
    return request_id or new_request_id(), content_length


async def body_past_limit(
    scope: Scope, receive: Receive, content_length: int | None, limit: int, *, streamed: bool = False
) -> tuple[Receive, bool]:
    """Whether the request's body is past ``limit`` bytes, and the ``receive`` to read it with: a declared
    length is compared; a body without one (chunked) is read up to the limit and replayed, unless the
    route reads it ``streamed`` itself (an upload, which counts against its own limit)."""
    if content_length is not None:
        return receive, content_length > limit
    if streamed or scope["method"] not in _BODY_METHODS:
        return receive, False
    return await buffer_body(receive, limit)


async def buffer_body(receive: Receive, limit: int) -> tuple[Receive, bool]:
    """Read a body of unknown length (chunked) up to ``limit`` bytes, then replay it; True when past it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return receive, True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return replay_body(b"".join(chunks), receive), False


async def read_body(receive: Receive) -> bytes:
    """The request's whole body from ``receive``, as Starlette's ``Request.body()`` reads it (which costs
    ~2.7 us against ~0.1 us for a body in one message, the usual); ClientDisconnect, as it raises, when
    the client leaves first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return b"".join([*chunks, body]) if chunks else body
        chunks.append(body)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` first, then whatever the client sends next (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def send_too_large(send: Send, limit: int, request_id: str) -> None:
    """The 413 of a body past ``limit``."""
    await send_json(send, 413, {"detail": f"request body larger than {limit} bytes"}, request_id)


async def answer_unexpected(scope: Scope, send: Send, request_id: str, exc: Exception) -> None:
    """Log an exception no handler took, and answer 500 in the route's error shape."""
    log_unexpected(scope["method"], scope["path"], request_id, exc)
    body = error_body(scope["path"], 500, "internal server error", "internal_error", request_id)
    await send_json(send, 500, body, request_id)


def finish_request(
    observers: list[RequestObserver], scope: Scope, request_id: str, status: int, duration: float
) -> None:
    """Write the request's access line and tell the observers."""
    record = RequestRecord(scope["method"], route_template(scope), status, duration, request_id)
    ACCESS_LOG.line(request_id, record.method, record.route, status, duration)
    for observer in observers:
        observer(record)


async def send_json(send: Send, status: int, body: dict[str, Any], request_id: str) -> None:
    """A whole JSON answer, with the request's id (none when ``request_id`` is empty: inside the stack,
    :class:`RequestContextMiddleware` adds it to whatever the app sends)."""
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Gives each request an id, enforces the body limit, logs it and tells the observers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        observers: list[RequestObserver] | None = None,
        uploads: tuple[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # (path, limit): POST to that path is an upload, streamed and counted by its route against its
        # own limit; here only a declared length past it (plus the multipart framing) is refused.
        self.upload_path, self.upload_limit = uploads or ("", 0)
        self.observers = observers if observers is not None else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id, content_length = read_request_headers(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder = [500]
        response_started = [False]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started[0] = True
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            limit = self.max_body_bytes
            upload = scope["path"] == self.upload_path and scope["method"] == "POST"
            if upload:
                limit = self.upload_limit + UPLOAD_FRAMING_BYTES
            receive, too_large = await body_past_limit(scope, receive, content_length, limit, streamed=upload)
            if too_large:
                status_holder[0] = 413
                await send_too_large(send, limit, request_id)
                return
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if response_started[0]:
                    raise  # too late for an error answer; the server closes the connection
                status_holder[0] = 500
                await answer_unexpected(scope, send, request_id, exc)
        finally:
            finish_request(self.observers, scope, request_id, status_holder[0], time.perf_counter() - start)


class MonitorContextMiddleware:
    """Activates the app's monitor for each HTTP request, for ``@monitor_performance``, and starts the
    request with no usage caller (authentication sets it; see ``services/usage/attribution.py``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = getattr(scope["app"].state, "services", None) if scope["type"] == "http" else None
        if services is None:
            await self.app(scope, receive, send)
            return
        with MonitorContext(services):
            await self.app(scope, receive, send)


class MonitorContext:
    """The request's context (``with``): the app's monitor active for ``@monitor_performance``, and no
    usage caller until authentication names one. A class: a generator-based one costs several times more,
    and every request enters one."""

    __slots__ = ("_activation", "_caller")

    def __init__(self, services: Services) -> None:
        self._activation = services.monitor.activate()

    def __enter__(self) -> None:
        self._caller = unattributed()
        self._activation.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._activation.__exit__(*exc_info)
        finally:
            end(self._caller)
