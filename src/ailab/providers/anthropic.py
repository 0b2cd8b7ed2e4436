"""Anthropic's Messages API: ``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``.

Wire differences from OpenAI, handled by the pure functions below: system prompts go in a top-level
``system`` field (not a message), ``max_tokens`` is required, consecutive messages of one role are
merged, and a stream is a sequence of typed SSE events::

    message_start (input tokens) -> content_block_start -> content_block_delta* (text_delta)
    -> content_block_stop -> message_delta (stop_reason, output tokens) -> message_stop

``ping`` events are ignored; an ``error`` event mid-stream is raised like an HTTP error.

Structured output (a :class:`ResponseSchema`) is a tool the model is made to call
(``tool_choice: {"type": "tool"}``): its ``tool_use`` input is the answer, as JSON text (streamed as the
``input_json_delta`` pieces).

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

from ailab.errors import ProviderError
from ailab.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResult,
    Credential,
    ModelInfo,
    Usage,
    sampling_fields,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint, TranslatingProvider
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
    """A message's content: its text, or its images' blocks and then its text block."""
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
    if request.response_schema is not None:
        schema = request.response_schema
        tool = {"name": schema.name, "input_schema": dict(schema.schema)}
        if schema.description:
            tool["description"] = schema.description
        body["tools"] = [tool]
        body["tool_choice"] = {"type": "tool", "name": schema.name}
    return body


def parse_usage(data: Any) -> Usage | None:
    """``usage`` (input_tokens / output_tokens) or None."""
    if not isinstance(data, dict):
        return None
    return Usage(int(data.get("input_tokens") or 0), int(data.get("output_tokens") or 0))


def parse_response(data: dict[str, Any], requested_model: str) -> ChatResult:
    """A ``message`` object as a :class:`ChatResult` (its text blocks joined; a tool call's input as JSON)."""
    blocks = data.get("content") or []
    text = "".join(block.get("text", "") for block in blocks if block.get("type") == "text")
    if not text:
        calls = [block.get("input") for block in blocks if block.get("type") == "tool_use"]
        text = orjson.dumps(calls[0]).decode() if calls else ""
    return ChatResult(
        content=text,
        model=data.get("model") or requested_model,
        usage=parse_usage(data.get("usage")),
        finish_reason=data.get("stop_reason"),
    )


def event_error(provider: str, data: dict[str, Any]) -> ProviderError:
    """The error for an ``error`` event in a stream."""
    error = data.get("error") or {}
    status = ERROR_STATUS.get(str(error.get("type")), 500)
    return status_error(provider, status, str(error.get("message") or "stream error"))


class StreamState:
    """Turns Anthropic's stream events into :class:`ChatChunk` s; the usage is assembled on the way."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.done = False

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text chunk of an event, or None; raises on an ``error`` event."""
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return ChatChunk(delta=delta["text"])
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                return ChatChunk(delta=delta["partial_json"])
        elif kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            self.input_tokens = int(usage.get("input_tokens") or 0)
            self.output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            usage = data.get("usage") or {}
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise event_error("anthropic", data)
        return None

    def final(self) -> ChatChunk:
        """The last chunk: stop reason and usage."""
        return ChatChunk(
            finish_reason=self.stop_reason or "end_turn", usage=Usage(self.input_tokens, self.output_tokens)
        )


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

    def parse_result(self, data: dict[str, Any], model: str) -> ChatResult:
        return parse_response(data, model)

    def stream_parser(self) -> StreamState:
        return StreamState()


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
    capabilities=Capabilities(json_schema=True, images=True),  # a forced tool; image blocks
    description="Anthropic's Messages API",
)
