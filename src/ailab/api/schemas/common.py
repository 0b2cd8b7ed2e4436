"""Shapes shared by every area: timestamps, errors, plain acknowledgements."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

Timestamp = Annotated[
    dt.datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Out(BaseModel):
    """Base of the response models: built from rows and objects by attribute."""

    model_config = ConfigDict(from_attributes=True)


# An event of a ``text/event-stream`` answer, as OpenAPI 3.1 describes each event of a stream.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "description": "a JSON object, or [DONE] at the end"},
        "id": {"type": "string"},
    },
    "required": ["data"],
}


def event_stream(description: str) -> dict[str, Any]:
    """An OpenAPI response for a ``text/event-stream`` answer."""
    return {"content": {"text/event-stream": {"schema": SSE_EVENT}}, "description": description}


class Problem(BaseModel):
    """An error outside ``/v1``: ``detail`` says what went wrong (a list for invalid fields)."""

    detail: str | list[dict[str, Any]]
    request_id: str | None = None  # 5xx only: quote it when reporting the problem


class Done(BaseModel):
    """An acknowledgement in the seed's shape."""

    status: Literal["success"] = "success"
    message: str


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each in the :class:`Problem` shape."""
    return {
        status: {"model": Problem, "description": _DESCRIPTIONS.get(status, "error")} for status in statuses
    }


_DESCRIPTIONS = {
    400: "bad request",
    401: "missing or invalid credentials",
    403: "needs the admin role, or a request from another origin",
    404: "not found",
    409: "conflicts with what is stored",
    413: "body too large",
    415: "the body must be JSON",
    422: "invalid input; nothing was changed",
    429: "too many requests; see Retry-After",
    500: "internal error (with a request_id)",
    502: "the model backend failed or refused",
    503: "unavailable for now; see Retry-After",
    504: "the model backend did not answer in time",
}
# What any route may answer besides its own: the guard, authentication, the body limit, throttling, and the
# database going away. Routers add the statuses of their own domain.
COMMON_PROBLEMS = (400, 401, 403, 413, 415, 422, 429, 500, 503)
