"""Mapping of every error to a JSON answer, in one place.

The seed's routes answer ``{"detail": ...}``; the OpenAI-compatible routes under ``/v1`` answer OpenAI's
``{"error": {"message", "type", "code"}}`` so SDKs raise their usual exceptions. Validation errors never
echo the offending input back (it may be a secret); unexpected errors answer 500 with the request id and
are logged with their traceback, never with the request body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from ailab.errors import AILabError

log = logging.getLogger("ailab.errors")
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}
# Where OpenAI's type follows the code, not the status: a spent budget is 429 like a rate limit, but its
# own type, so a client can tell "wait a moment" from "wait for the next period".
_OPENAI_TYPES_BY_CODE = {"insufficient_quota": "insufficient_quota"}


def request_id(request: Request) -> str:
    """The id the middleware gave this request (read from the scope's state, which ``request.state``
    wraps in a new object at each access)."""
    state = request.scope.get("state")
    return str(state.get("request_id", "")) if state else ""


def error_body(path: str, status: int, message: Any, code: str | None, request_id: str) -> dict[str, Any]:
    """The JSON body of an error: OpenAI's shape under ``/v1/``, FastAPI's ``detail`` elsewhere."""
    if path.startswith("/v1/"):
        text = message if isinstance(message, str) else "invalid request"
        error: dict[str, Any] = {
            "message": text,
            "type": _OPENAI_TYPES_BY_CODE.get(code or "")
            or _OPENAI_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
            "code": code,
            "param": None,
        }
        if not isinstance(message, str):
            error["details"] = message
        body: dict[str, Any] = {"error": error}
    else:
        body = {"detail": message}
    if status >= 500:
        body["request_id"] = request_id
    return body


def error_response(
    request: Request,
    status: int,
    message: Any,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error in the shape the route's clients expect."""
    body = error_body(request.url.path, status, message, code, request_id(request))
    return JSONResponse(body, status_code=status, headers=headers)


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(request, 400, "malformed JSON body", code="invalid_json")
    cleaned = _clean_validation_errors(errors)
    if request.url.path.startswith("/v1/"):
        first = cleaned[0] if cleaned else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"][1:]) or "body"
        return error_response(request, 422, f"{where}: {first['msg']}", code="invalid_request")
    return error_response(request, 422, cleaned)


def retry_after_header(exc: AILabError) -> dict[str, str]:
    """``Retry-After`` for an error that says when to try again (throttled, a busy model), else none."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        return {"Retry-After": str(max(1, round(retry_after)))}
    return {}


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AILabError)
    headers = retry_after_header(exc) or None
    if exc.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    if exc.status >= 500:
        log.warning("%s answered %d: %s", request.url.path, exc.status, exc.message)
    return error_response(request, exc.status, exc.message, code=exc.code, headers=headers)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(request, exc.status_code, exc.detail, headers=headers)


# PostgreSQL's classes for a server going away or coming back: 08 connection exception, 57P operator
# intervention ("the database system is shutting down / starting up", admin and crash shutdown).
_UNAVAILABLE_SQLSTATES = ("08", "57P")


def _is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        state = str(getattr(exc.orig, "sqlstate", None) or "")
        return exc.connection_invalidated or state.startswith(_UNAVAILABLE_SQLSTATES)
    return isinstance(exc, ConnectionError | OSError) and not isinstance(exc, FileNotFoundError)


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    if _is_unreachable(exc):
        log.error("database unavailable on %s: %s", request.url.path, type(exc).__name__)
        return error_response(
            request, 503, "database unavailable", code="database_unavailable", headers={"Retry-After": "5"}
        )
    return await _on_unexpected(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log_unexpected(request.method, request.url.path, request_id(request), exc)
    return error_response(request, 500, "internal server error", code="internal_error")


def log_unexpected(method: str, path: str, req_id: str, exc: BaseException) -> None:
    """Log an unhandled error with its traceback and request id (never the request body)."""
    log.error("unhandled error on %s %s (request %s)", method, path, req_id, exc_info=exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(AILabError, _on_domain_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(PoolTimeout, _on_database_error)
    app.add_exception_handler(ConnectionError, _on_database_error)
    # Anything else is answered by RequestContextMiddleware (inside Starlette's ServerErrorMiddleware,
    # so the answer still carries the request id), or on the hot routes by the fast lane, alike.
