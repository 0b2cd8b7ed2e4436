"""The body of ``POST /v1/chat/completions``, as a model: what the gateway accepts, and what
``/openapi.json`` says it accepts.

The gateway validates every request with :class:`ChatCompletionRequest` on the fast lane and the routed
path alike, then forwards the JSON as it came to backends that speak OpenAI's wire: parameters this model
does not name (``tools``, ``logprobs``, ...) pass through untouched, so it allows extra fields.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ailab.errors import InvalidInput

MAX_MESSAGES = 4096
MAX_TOKENS = 2**31 - 1  # no backend takes more; bounded so the number fits every integer type
M = TypeVar("M", bound=BaseModel)


class BadRequest(InvalidInput):
    """A request OpenAI would answer with 400 (malformed JSON, missing or mistyped fields)."""

    status = 400
    code = "invalid_request"


class ImageURL(BaseModel):
    """Where an ``image_url`` part's image is: a ``data:image/...;base64,`` URL (an http(s) URL only
    reaches backends that speak OpenAI's wire, which fetch it themselves)."""

    model_config = ConfigDict(extra="allow")

    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    """A content part: ``text``, or ``image_url`` for a model that can see. Other kinds (audio, files)
    reach only backends that speak OpenAI's wire, as they are."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    image_url: ImageURL | None = None


class MessageIn(BaseModel):
    """One message of the conversation (``developer`` is taken as ``system``)."""

    model_config = ConfigDict(extra="allow")  # name, tool_calls, tool_call_id... pass through

    role: Annotated[str, Field(min_length=1, max_length=64)]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completions request: ``model`` is ``provider/model`` or ``pipeline/<name>``."""

    model_config = ConfigDict(extra="allow")  # other OpenAI parameters go to the backend as they are

    model: Annotated[str, Field(min_length=1, max_length=255, examples=["local/smollm2-135m-instruct"])]
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None


def validate_request(payload: Any) -> ChatCompletionRequest:
    """``payload`` checked against :class:`ChatCompletionRequest` (see :func:`validate_body`)."""
    return validate_body(ChatCompletionRequest, payload)


def validate_body(model: type[M], payload: Any) -> M:
    """``payload`` checked against ``model``; :class:`BadRequest` naming the field.

    The message never repeats the value (it may be a secret pasted in the wrong place). Of several errors
    it names the deepest: inside a union (content: a string or parts) that is the member the value nearly
    matched, a malformed part rather than "not a string"; the union's member tags are left out of the path.
    """
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        first = max(errors, key=lambda error: len(error["loc"]))
        parts = [part for part in first["loc"] if not (isinstance(part, str) and "[" in part)]
        where = ".".join(str(part) for part in parts) or "the request body"
        raise BadRequest(f"'{where}': {first['msg']}") from None
