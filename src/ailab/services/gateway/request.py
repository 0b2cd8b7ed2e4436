"""The body of ``POST /v1/chat/completions``, as a model: what the gateway accepts, and what
``/openapi.json`` says it accepts.

The gateway validates every request with :class:`ChatCompletionRequest` on the fast lane and the routed
path alike, then forwards the JSON as it came to backends that speak OpenAI's wire: parameters this model
does not name (``logprobs``, ``seed``, ...) pass through untouched, so it allows extra fields. Tools,
tool calls and response formats are declared in OpenAI's shapes, loosely (other tool kinds than
``function`` reach only OpenAI's wire), so clients see them in ``/openapi.json``; the translated path reads
them (``gateway/translated.py``), and refuses what it cannot carry.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ailab.errors import InvalidInput

MAX_MESSAGES = 4096
MAX_TOOLS = 128  # OpenAI's limit
MAX_TOKENS = 2**31 - 1  # no backend takes more; bounded so the number fits every integer type
M = TypeVar("M", bound=BaseModel)


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


class FunctionCall(BaseModel):
    """The function a tool call calls, and its arguments as JSON text."""

    model_config = ConfigDict(extra="allow")

    name: str
    arguments: str


class ToolCallIn(BaseModel):
    """A tool call an assistant's message made (sent back with the conversation)."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str = "function"
    function: FunctionCall | None = None  # a ``custom`` tool's call has none (OpenAI's wire only)


class MessageIn(BaseModel):
    """One message of the conversation (``developer`` is taken as ``system``): an assistant's may carry
    its ``tool_calls`` (its content null), a ``tool`` message answers the call ``tool_call_id``."""

    model_config = ConfigDict(extra="allow")  # name, refusal... pass through

    role: Annotated[str, Field(min_length=1, max_length=64)]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    """A function the model may call: its name, what it is for, the JSON schema of its arguments."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(min_length=1)]  # no more: an upstream judges its own limits
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(BaseModel):
    """A tool the model may call: ``{"type": "function", "function": {...}}``."""

    model_config = ConfigDict(extra="allow")

    type: str
    function: FunctionDefinition | None = None


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class NamedToolChoice(BaseModel):
    """``{"type": "function", "function": {"name"}}``: the model must call this tool."""

    model_config = ConfigDict(extra="allow")

    type: str
    function: NamedFunction | None = None


class JSONSchemaFormat(BaseModel):
    """The schema a ``json_schema`` response format holds the answer to."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """``{"type": "text" | "json_object"}``, or ``{"type": "json_schema", "json_schema": {...}}``."""

    model_config = ConfigDict(extra="allow")

    type: str
    json_schema: JSONSchemaFormat | None = None


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
    tools: Annotated[list[ToolIn], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


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
