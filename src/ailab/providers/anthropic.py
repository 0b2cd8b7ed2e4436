"""Anthropic's Messages API: ``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``.

Wire differences from OpenAI, handled by the pure functions below: system prompts go in a top-level
``system`` field (not a message), ``max_tokens`` is required, consecutive messages of one role are
merged, there is no ``seed`` nor penalty (asked for, they are refused), and a stream is a sequence of
typed SSE events::

    message_start (input tokens) -> content_block_start -> content_block_delta* (text_delta)
    -> content_block_stop -> message_delta (stop_reason, output tokens) -> message_stop

``ping`` events are ignored; an ``error`` event mid-stream is raised like an HTTP error.

Structured output (a :class:`ResponseSchema`) is a tool the model is made to call
(``tool_choice: {"type": "tool"}``): its ``tool_use`` input is the answer, as JSON text (streamed as the
``input_json_delta`` pieces). Anthropic has no JSON mode without a schema: ``json_object`` is refused.

Tools are ``{"name", "description", "input_schema"}``; the choice ``{"type": "auto" | "any" | "tool" |
"none"}`` (OpenAI's ``required`` is ``any``), and ``parallel_tool_calls: false`` is the choice's
``disable_parallel_tool_use``. The model's calls are ``tool_use`` blocks (``stop_reason: tool_use``), their
``input`` an object; streamed, a call is a ``content_block_start`` with its id and name, then
``input_json_delta`` pieces of its input. Results go back as ``tool_result`` blocks in a user message (the
results of one turn merged into one message, before any text, as Anthropic wants). Tools and a response
schema at once are refused: the schema is itself a forced tool.

A message's images are ``image`` blocks with a ``base64`` source, before its text block (Anthropic's
advice: images first); a message without images keeps its plain string content. Claude 3 and every later
model reads images; Claude 1, 2 and Instant do not.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.errors import InvalidInput, ProviderError
from ailab.providers.base import (
    FINISH_TOOL_CALLS,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResult,
    Credential,
    ModelInfo,
    ToolCall,
    ToolCallDelta,
    Usage,
    extra_sampling,
    sampling_fields,
    token_count,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint, TranslatingProvider
from ailab.providers.tools import CallIndexes, arguments_object, arguments_text, choice_of, refuse
from ailab.providers.upstream_errors import status_error

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
# Anthropic's error types with the HTTP status they stand for, to map mid-stream error events.
ERROR_STATUS = {
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


# The models that read no images: everything before Claude 3.
_BLIND = re.compile(r"^claude-(?:instant|1|2)(?:[.-]|$)")

Content = str | list[dict[str, Any]]


def model_sees(model: str) -> bool:
    """Whether a Claude model reads images (Claude 3 and later)."""
    return _BLIND.match(model) is None


def content_of(message: ChatMessage) -> Content:
    """A message's content: its text, or its images' blocks and then its text block; an assistant's
    text and ``tool_use`` blocks, a tool's ``tool_result`` block."""
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.content:  # Anthropic refuses empty text, and takes a result without content
            result["content"] = message.content
        return [result]
    if message.tool_calls:
        uses = [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments_object(call)}
            for call in message.tool_calls
        ]
        return _blocks(message.content) + uses
    if not message.images:
        return message.content
    blocks: list[dict[str, Any]] = [
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": image.media_type,
                "data": base64.b64encode(image.data).decode("ascii"),
            },
        }
        for image in message.images
    ]
    return blocks + _blocks(message.content)


def _blocks(content: Content) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []  # Anthropic refuses empty text blocks


def merged(earlier: Content, later: Content) -> Content:
    """Two consecutive contents of one role as one (Anthropic wants the roles to alternate)."""
    if isinstance(earlier, str) and isinstance(later, str):
        return earlier + "\n\n" + later
    return _blocks(earlier) + _blocks(later)


def build_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for ``request``."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] = merged(messages[-1]["content"], content_of(message))
        else:
            messages.append({"role": role, "content": content_of(message)})
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    body.update(sampling_fields(request, max_tokens=None, stop="stop_sequences"))
    unknown = extra_sampling(request)
    if unknown:  # Anthropic has neither a seed nor penalties
        raise refuse("anthropic", f"take '{next(iter(unknown))}' (the Messages API has no such setting)")
    if request.json_object:
        raise InvalidInput(
            "anthropic has no JSON mode without a schema: ask for a json_schema response format instead"
        )
    if request.response_schema is not None:
        if request.tools:
            raise refuse("anthropic", "take tools and a response schema at once (the schema is a tool)")
        schema = request.response_schema
        tool = {"name": schema.name, "input_schema": dict(schema.schema)}
        if schema.description:
            tool["description"] = schema.description
        body["tools"] = [tool]
        body["tool_choice"] = {"type": "tool", "name": schema.name}
    body.update(tool_fields(request))
    return body


_CHOICES = {"auto": "auto", "none": "none", "required": "any", "function": "tool"}


def tool_fields(request: ChatRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` of a request with tools (see the module docstring)."""
    if not request.tools:
        return {}
    tools = []
    for tool in request.tools:
        spec: dict[str, Any] = {"name": tool.name, "input_schema": dict(tool.parameters)}
        if tool.description:
            spec["description"] = tool.description
        tools.append(spec)
    fields: dict[str, Any] = {"tools": tools}
    choice = choice_of(request)
    mode = choice.mode if choice is not None else "auto"
    if choice is not None or request.parallel_tool_calls is False:
        wire: dict[str, Any] = {"type": _CHOICES[mode]}
        if choice is not None and choice.mode == "function":
            wire["name"] = choice.name
        if request.parallel_tool_calls is False and mode != "none":
            wire["disable_parallel_tool_use"] = True
        fields["tool_choice"] = wire
    return fields


def parse_usage(data: Any) -> Usage | None:
    """``usage`` (input_tokens / output_tokens) or None."""
    if not isinstance(data, dict):
        return None
    return Usage(token_count(data.get("input_tokens")), token_count(data.get("output_tokens")))


def parse_response(data: dict[str, Any], requested_model: str, *, structured: bool = False) -> ChatResult:
    """A ``message`` object as a :class:`ChatResult`: its text blocks joined, its ``tool_use`` blocks as
    tool calls; ``structured`` (a response schema was asked for): the forced tool's input is the answer."""
    blocks = data.get("content") or []
    text = "".join(block.get("text", "") for block in blocks if block.get("type") == "text")
    uses = [block for block in blocks if block.get("type") == "tool_use" and block.get("name")]
    stop = data.get("stop_reason")
    if structured:
        if not text and uses:
            text = orjson.dumps(uses[0].get("input")).decode()
        return ChatResult(
            content=text,
            model=data.get("model") or requested_model,
            usage=parse_usage(data.get("usage")),
            finish_reason="end_turn" if stop == "tool_use" else stop,  # the call was the answer
        )
    calls = tuple(
        ToolCall(str(block.get("id") or ""), str(block["name"]), arguments_text(block.get("input")))
        for block in uses
    )
    return ChatResult(
        content=text,
        model=data.get("model") or requested_model,
        usage=parse_usage(data.get("usage")),
        finish_reason=FINISH_TOOL_CALLS if stop == "tool_use" else stop,
        tool_calls=calls,
    )


def event_error(provider: str, data: dict[str, Any]) -> ProviderError:
    """The error for an ``error`` event in a stream."""
    error = data.get("error") or {}
    status = ERROR_STATUS.get(str(error.get("type")), 500)
    return status_error(provider, status, str(error.get("message") or "stream error"))


class StreamState:
    """Turns Anthropic's stream events into :class:`ChatChunk` s; the usage is assembled on the way.

    ``structured``: the forced tool's input is the answer, streamed as text; otherwise ``tool_use``
    blocks are tool calls, streamed as :class:`ToolCallDelta` s (a call whose input came in no piece, a
    tool without parameters, gets ``{}`` when its block stops, as OpenAI sends it).
    """

    def __init__(self, *, structured: bool = False) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.done = False
        self.structured = structured
        self.calls = CallIndexes()  # by content block index
        self._empty: set[int] = set()  # calls whose arguments have not begun

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text chunk (or tool call piece) of an event, or None; raises on an ``error`` event."""
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return ChatChunk(delta=delta["text"])
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                if self.structured:
                    return ChatChunk(delta=delta["partial_json"])
                index = self.calls.get(data.get("index"))
                if index is not None:
                    self._empty.discard(index)
                    return ChatChunk(tool_calls=(ToolCallDelta(index, arguments=delta["partial_json"]),))
        elif kind == "content_block_start" and not self.structured:
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use" and block.get("name"):
                index = self.calls.start(data.get("index"))
                self._empty.add(index)
                start = ToolCallDelta(index, id=str(block.get("id") or ""), name=str(block["name"]))
                return ChatChunk(tool_calls=(start,))
        elif kind == "content_block_stop" and not self.structured:
            index = self.calls.get(data.get("index"))
            if index is not None and index in self._empty:
                self._empty.discard(index)
                return ChatChunk(tool_calls=(ToolCallDelta(index, arguments="{}"),))
        elif kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            self.input_tokens = token_count(usage.get("input_tokens"))
            self.output_tokens = token_count(usage.get("output_tokens"))
        elif kind == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            usage = data.get("usage") or {}
            self.output_tokens = token_count(usage.get("output_tokens")) or self.output_tokens
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise event_error("anthropic", data)
        return None

    def final(self) -> ChatChunk:
        """The last chunk: stop reason and usage."""
        stop = self.stop_reason or "end_turn"
        if stop == "tool_use":
            stop = "end_turn" if self.structured else FINISH_TOOL_CALLS
        return ChatChunk(finish_reason=stop, usage=Usage(self.input_tokens, self.output_tokens))


def parse_models(data: dict[str, Any]) -> list[ModelInfo]:
    """``GET /v1/models`` as :class:`ModelInfo` s."""
    return [
        ModelInfo(id=str(item["id"]), owned_by="anthropic")
        for item in data.get("data") or []
        if isinstance(item, dict) and item.get("id")
    ]


class AnthropicProvider(TranslatingProvider):
    """Claude models through the Messages API."""

    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    tools = True  # every Claude model calls tools

    async def can_see(self, model: str) -> bool:
        """Claude 3 and later read images."""
        return model_sees(model)

    def headers(self, credential: Credential) -> dict[str, str]:
        """Anthropic's key and version headers."""
        return {"x-api-key": credential.api_key or "", "anthropic-version": API_VERSION}

    async def _fetch_models(self, credential: Credential) -> list[ModelInfo]:
        data = await self.http.json(
            "GET",
            f"{self.base_url(credential)}/v1/models",
            headers=self.headers(credential),
            params={"limit": "1000"},
            secret=credential.api_key,
        )
        return parse_models(data if isinstance(data, dict) else {})

    def chat_endpoint(self, credential: Credential, request: ChatRequest, *, stream: bool) -> Endpoint:
        """``/v1/messages``, streamed or not."""
        return Endpoint(f"{self.base_url(credential)}/v1/messages")

    def request_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return build_body(request, stream=stream)

    def parse_result(self, data: dict[str, Any], request: ChatRequest) -> ChatResult:
        return parse_response(data, request.model, structured=request.response_schema is not None)

    def stream_parser(self, request: ChatRequest) -> StreamState:
        return StreamState(structured=request.response_schema is not None)


class AnthropicSettings(ProviderSettings):
    """``AILAB_ANTHROPIC_*``."""

    model_config = SettingsConfigDict(env_prefix="AILAB_ANTHROPIC_")

    base_url: str = ""  # empty: https://api.anthropic.com
    api_key: SecretStr | None = None


PLUGIN = ProviderPlugin(
    name="anthropic",
    settings=AnthropicSettings,
    factory=AnthropicProvider,
    credential=CredentialFormat(
        re.compile(r"^sk-ant-[A-Za-z0-9_-]{20,}$"),
        "an Anthropic key: 'sk-ant-' followed by at least 20 letters, digits, '-' or '_'",
        config=BASE_URL_OPTIONAL,
    ),
    capabilities=Capabilities(json_schema=True, tools=True, images=True),  # a forced tool; image blocks
    description="Anthropic's Messages API",
)
