"""What every request must satisfy before any route sees it (pure ASGI, one pass over the headers).

Everywhere: a request that carries a body to a JSON route must say ``Content-Type: application/json``
(415 otherwise). A web page can POST a ``text/plain`` body or one without a type to any address without
asking first (a CORS "simple request"); JSON is what makes a browser ask (a preflight), which a
closed CORS refuses.

With ``AILAB_AUTH=off`` (one person's machine, everyone acting as admin) there are no credentials to
stand in the way, so also:

- only clients on this machine are served, read from the connection itself (not from ``AILAB_HOST``:
  ``uvicorn --factory --host 0.0.0.0`` would get round that);
- only loopback ``Host`` names are served (``localhost``, ``127.0.0.1``, ``[::1]``): a DNS-rebinding page
  reaches 127.0.0.1 under its own name, and would act as admin;
- a state-changing request (POST, PUT, PATCH, DELETE) that a browser sent from another site (an
  ``Origin`` that is not this server's, nor one of ``AILAB_CORS_ORIGINS``) is refused, bodiless ones
  included (``POST /benchmark/llm?...`` needs no body to spend a key).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from ailab.api.errors import error_body
from ailab.api.middleware import send_json

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
# Routes whose body is not JSON: uploads are multipart (the route checks that itself).
NOT_JSON_PREFIXES: tuple[str, ...] = ("/files",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address) is this machine."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _host_name(value: str) -> str:
    """The name of a ``Host`` header, without its port."""
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json``, parameters ignored."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestGuard:
    """Refuses what no route should see (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, auth_off: bool, cors_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.auth_off = auth_off
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await send_refusal(scope, send, refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        """(status, message, code) when the request must be refused, else None."""
        method = scope["method"]
        if not self.auth_off and method not in WITH_BODY:
            return None  # the common case costs one set lookup
        content_type = host = origin = ""
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                has_body = value not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if self.auth_off:
            client = scope.get("client")
            if client and not is_loopback(client[0]):
                return 403, "AILAB_AUTH=off serves this machine only", "forbidden"
            if _host_name(host.lower()) not in LOOPBACK_NAMES:
                return 403, "AILAB_AUTH=off serves loopback names only (localhost, 127.0.0.1)", "forbidden"
            if method in UNSAFE and origin and origin.rstrip("/") not in self._own_origins(scope, host):
                return 403, f"a request from the page {origin} may not change anything here", "forbidden"
        if method in WITH_BODY and has_body and not is_json(content_type):
            path: str = scope["path"]
            if not (NOT_JSON_PREFIXES and path.startswith(NOT_JSON_PREFIXES)):
                return 415, "the body must be JSON (Content-Type: application/json)", "unsupported_media_type"
        return None

    def _own_origins(self, scope: Scope, host: str) -> frozenset[str]:
        scheme = scope.get("scheme", "http")
        return self.cors_origins | {f"{scheme}://{host}"}


async def send_refusal(scope: Scope, send: Send, refusal: tuple[int, str, str], request_id: str = "") -> None:
    """Answer a :meth:`RequestGuard.refusal` in the route's error shape (with the request's id, when the
    caller has one: a refusal inside the middleware stack gets it from the stack)."""
    status, message, code = refusal
    await send_json(send, status, error_body(scope["path"], status, message, code, request_id), request_id)
