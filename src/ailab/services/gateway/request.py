"""The body of ``POST /v1/chat/completions``: what the gateway accepts, and what ``/openapi.json`` says it
accepts.

The gateway validates every request with :class:`ChatCompletionRequest` on the fast lane and the routed
path alike, then forwards the JSON as it came to backends that speak OpenAI's wire: parameters it does
not name (``logprobs``, ``seed``, ...) pass through untouched, so every part allows extra fields. Tools,
tool calls and response formats are declared in OpenAI's shapes, loosely (other tool kinds than
``function`` reach only OpenAI's wire), so clients see them in ``/openapi.json``; the translated path reads
them (``gateway/translated.py``), and refuses what it cannot carry.

The shapes are ``TypedDict``s, not pydantic models: the validated value is thrown away (the payload goes on
as it came), and checking a dict builds no model objects (a one-message request: 1.2 us instead of 3.7).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NotRequired, TypeVar

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from ailab.errors import InvalidInput

MAX_MESSAGES = 4096
MAX_TOOLS = 128  # OpenAI's limit
MAX_TOKENS = 2**31 - 1  # no backend takes more; bounded so the number fits every integer type
T = TypeVar("T")


class BadRequest(InvalidInput):
    """A request OpenAI would answer with 400 (malformed JSON, missing or mistyped fields)."""

    status = 400
    code = "invalid_request"


def json_object(body: bytes) -> dict[str, Any]:
    """A request body as its JSON object; BadRequest when it is not JSON or not an object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    return payload


# Every part allows fields it does not name: they go on as they came.
_OPEN = with_config(ConfigDict(extra="allow"))


@_OPEN
class ImageURL(TypedDict):
    """Where an ``image_url`` part's image is: a ``data:image/...;base64,`` URL (an http(s) URL only
    reaches backends that speak OpenAI's wire, which fetch it themselves)."""

    url: str
    detail: NotRequired[str | None]


@_OPEN
class ContentPart(TypedDict):
    """A content part: ``text``, or ``image_url`` for a model that can see. Other kinds (audio, files)
    reach only backends that speak OpenAI's wire, as they are."""

    type: str
    text: NotRequired[str | None]
    image_url: NotRequired[ImageURL | None]


@_OPEN
class FunctionCall(TypedDict):
    """The function a tool call calls, and its arguments as JSON text."""

    name: str
    arguments: str


@_OPEN
class ToolCallIn(TypedDict):
    """A tool call an assistant's message made (sent back with the conversation)."""

    id: str
    type: NotRequired[Annotated[str, Field(json_schema_extra={"default": "function"})]]
    function: NotRequired[FunctionCall | None]  # a ``custom`` tool's call has none (OpenAI's wire only)


@_OPEN
class MessageIn(TypedDict):
    """One message of the conversation (``developer`` is taken as ``system``): an assistant's may carry
    its ``tool_calls`` (its content null), a ``tool`` message answers the call ``tool_call_id``."""

    role: Annotated[str, Field(min_length=1, max_length=64)]
    content: NotRequired[str | list[ContentPart] | None]
    tool_calls: NotRequired[list[ToolCallIn] | None]
    tool_call_id: NotRequired[str | None]


@_OPEN
class FunctionDefinition(TypedDict):
    """A function the model may call: its name, what it is for, the JSON schema of its arguments."""

    name: Annotated[str, Field(min_length=1)]  # no more: an upstream judges its own limits
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


@_OPEN
class ToolIn(TypedDict):
    """A tool the model may call: ``{"type": "function", "function": {...}}``."""

    type: str
    function: NotRequired[FunctionDefinition | None]


@_OPEN
class NamedFunction(TypedDict):
    name: str


@_OPEN
class NamedToolChoice(TypedDict):
    """``{"type": "function", "function": {"name"}}``: the model must call this tool."""

    type: str
    function: NotRequired[NamedFunction | None]


@_OPEN
class JSONSchemaFormat(TypedDict):
    """The schema a ``json_schema`` response format holds the answer to."""

    name: Annotated[str, Field(min_length=1)]
    description: NotRequired[str | None]
    schema: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


@_OPEN
class ResponseFormat(TypedDict):
    """``{"type": "text" | "json_object"}``, or ``{"type": "json_schema", "json_schema": {...}}``."""

    type: str
    json_schema: NotRequired[JSONSchemaFormat | None]


@_OPEN
class StreamOptions(TypedDict):
    include_usage: NotRequired[bool | None]


@_OPEN
class ChatCompletionRequest(TypedDict):
    """OpenAI's chat completions request: ``model`` is ``provider/model`` or ``pipeline/<name>``."""

    model: Annotated[str, Field(min_length=1, max_length=255, examples=["local/smollm2-135m-instruct"])]
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: NotRequired[Annotated[bool, Field(json_schema_extra={"default": False})]]
    stream_options: NotRequired[StreamOptions | None]
    max_tokens: NotRequired[Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None]
    max_completion_tokens: NotRequired[Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    stop: NotRequired[str | Annotated[list[str], Field(max_length=16)] | None]
    tools: NotRequired[Annotated[list[ToolIn], Field(max_length=MAX_TOOLS)] | None]
    tool_choice: NotRequired[str | NamedToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    response_format: NotRequired[ResponseFormat | None]


CHAT_COMPLETION_REQUEST = TypeAdapter(ChatCompletionRequest)


def validate_request(payload: Any) -> ChatCompletionRequest:
    """``payload`` checked against :class:`ChatCompletionRequest` (see :func:`validate_body`)."""
    return validate_body(CHAT_COMPLETION_REQUEST.validate_python, payload)


def validate_body(validate: Callable[[Any], T], payload: Any) -> T:
    """``payload`` checked by ``validate`` (a pydantic validator); :class:`BadRequest` naming the field.

    The message never repeats the value (it may be a secret pasted in the wrong place). Of several errors
    it names the deepest: inside a union (content: a string or parts) that is the member the value nearly
    matched, a malformed part rather than "not a string"; the union's member tags are left out of the path.
    """
    try:
        return validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        first = max(errors, key=lambda error: len(error["loc"]))
        parts = [part for part in first["loc"] if not (isinstance(part, str) and "[" in part)]
        where = ".".join(str(part) for part in parts) or "the request body"
        raise BadRequest(f"'{where}': {first['msg']}") from None
