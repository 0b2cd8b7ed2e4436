"""Cohere's v2 Chat API: ``POST /v2/chat`` with a bearer key; models from ``GET /v1/models``.

Messages keep OpenAI's roles (system, user, assistant); the answer's text is in ``message.content[]``;
usage is ``usage.tokens`` (``billed_units`` as a fallback). A stream is SSE whose ``data:`` objects carry
a ``type``::

    message-start -> content-start -> content-delta* (delta.message.content.text) -> content-end
    -> message-end (delta.finish_reason, delta.usage)

Structured output is ``response_format: {"type": "json_object", "json_schema": ...}`` (without the
schema: any JSON object).

Tools are OpenAI's shape (``{"type": "function", "function": {...}}``). The choice is ``tool_choice``
``"REQUIRED"`` or ``"NONE"`` (left out: the model decides); a named tool is ``REQUIRED`` with only that tool
offered. Cohere has no switch for parallel calls, so ``parallel_tool_calls: false`` is refused. The
model's calls are ``message.tool_calls`` (ids and JSON text arguments, as OpenAI's), with its
``tool_plan`` (what it means to do) as the answer's text; ``finish_reason`` is ``TOOL_CALL``. Streamed:
``tool-plan-delta`` text, then per call ``tool-call-start`` (id, name), ``tool-call-delta`` pieces of the
arguments and ``tool-call-end``. The conversation goes back with the assistant's ``tool_plan`` and
``tool_calls``, and ``tool`` messages with their ``tool_call_id``.

Images go as OpenAI's ``image_url`` content parts (v2 chat takes the same shape), to the models that read
them: Command A Vision and Aya Vision; the other Command models are text only.

Embeddings are ``POST /v2/embed`` with ``{"model", "texts", "input_type": "search_document",
"embedding_types": ["float"]}``, at most 96 texts per call, answering ``{"embeddings": {"float": [...]}}``
with the tokens billed in ``meta.billed_units.input_tokens``. One input type serves documents and
questions alike: AI-Lab's callers embed both with one call, and Cohere's models are trained to match
``search_document`` vectors against each other too.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.errors import ProviderUnavailable
from ailab.providers.base import (
    FINISH_TOOL_CALLS,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResult,
    Credential,
    Embeddings,
    ModelInfo,
    ToolCallDelta,
    Usage,
    extra_sampling,
    sampling_fields,
    token_count,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.embeddings import EmbeddingProvider, vectors
from ailab.providers.openai_wire import content_parts, parse_tool_calls, tool_call_json, tool_json
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint
from ailab.providers.tools import CallIndexes, choice_of, refuse

_SEES = re.compile(r"^(?:command-a-vision|c4ai-aya-vision)")
EMBED_BATCH = 96  # texts per /v2/embed call


def model_sees(model: str) -> bool:
    """Whether a Cohere model reads images (the vision ones; see the module docstring)."""
    return _SEES.match(model) is not None


def message_json(message: ChatMessage) -> dict[str, Any]:
    """One v2 message: OpenAI's shape, except that an assistant's text beside its calls is its plan."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        out: dict[str, Any] = {"role": message.role}
        if message.content:
            out["tool_plan"] = message.content
        out["tool_calls"] = [tool_call_json(call) for call in message.tool_calls]
        return out
    return {"role": message.role, "content": content_parts(message) if message.images else message.content}


def build_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v2/chat`` for ``request``."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_json(m) for m in request.messages],
        "stream": stream,
    }
    body.update(sampling_fields(request, top_p="p", stop="stop_sequences"))
    body.update(extra_sampling(request))  # seed and the penalties: OpenAI's names
    if request.response_schema is not None:
        body["response_format"] = {"type": "json_object", "json_schema": dict(request.response_schema.schema)}
    elif request.json_object:
        body["response_format"] = {"type": "json_object"}
    body.update(tool_fields(request))
    return body


def tool_fields(request: ChatRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` of a request with tools (see the module docstring)."""
    if not request.tools:
        return {}
    if request.parallel_tool_calls is False:
        raise refuse("cohere", "be kept to one tool call at a time (parallel_tool_calls: false)")
    tools = request.tools
    choice = choice_of(request)
    fields: dict[str, Any] = {}
    if choice is not None and choice.mode == "function":
        tools = tuple(tool for tool in tools if tool.name == choice.name)  # the only one it may call
    if choice is not None and choice.mode != "auto":
        fields["tool_choice"] = "NONE" if choice.mode == "none" else "REQUIRED"
    return {"tools": [tool_json(tool) for tool in tools], **fields}


def parse_usage(data: Any) -> Usage | None:
    """``usage`` (its ``tokens``, else ``billed_units``) or None."""
    if not isinstance(data, dict):
        return None
    counts = data.get("tokens") or data.get("billed_units")
    if not isinstance(counts, dict):
        counts = {}
    return Usage(token_count(counts.get("input_tokens")), token_count(counts.get("output_tokens")))


def finish_reason(reason: Any) -> str | None:
    """Cohere's finish reason, ``TOOL_CALL`` as OpenAI's ``tool_calls``."""
    return FINISH_TOOL_CALLS if reason == "TOOL_CALL" else reason


def parse_response(data: dict[str, Any], requested_model: str) -> ChatResult:
    """A v2 chat answer as a :class:`ChatResult` (with its tool calls; its plan as the text)."""
    message = data.get("message") or {}
    content = message.get("content") or []
    text = "".join(part.get("text", "") for part in content if part.get("type", "text") == "text")
    return ChatResult(
        content=text or str(message.get("tool_plan") or ""),
        model=requested_model,
        usage=parse_usage(data.get("usage")),
        finish_reason=finish_reason(data.get("finish_reason")),
        tool_calls=parse_tool_calls(message.get("tool_calls")),
    )


class StreamState:
    """Turns v2 stream events into :class:`ChatChunk` s."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.calls = CallIndexes()  # by the event's index

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text (or tool call piece) of one event, or None."""
        kind = data.get("type")
        delta = data.get("delta") or {}
        message = delta.get("message") or {}
        if kind == "content-delta":
            text = (message.get("content") or {}).get("text") or ""
            return ChatChunk(delta=text) if text else None
        if kind == "tool-plan-delta":
            text = message.get("tool_plan") or ""
            return ChatChunk(delta=text) if text else None
        if kind in ("tool-call-start", "tool-call-delta"):
            call = message.get("tool_calls") or {}
            function = call.get("function") or {}
            arguments = function.get("arguments") or ""
            if kind == "tool-call-start":
                start = self.calls.start(data.get("index"))
                name = str(function.get("name") or "")
                return ChatChunk(
                    tool_calls=(ToolCallDelta(start, str(call.get("id") or ""), name, arguments),)
                )
            index = self.calls.get(data.get("index"))
            if index is not None and arguments:
                return ChatChunk(tool_calls=(ToolCallDelta(index, arguments=arguments),))
            return None
        if kind == "message-end":
            self.finish_reason = finish_reason(delta.get("finish_reason"))
            self.usage = parse_usage(delta.get("usage"))
            self.done = True
        return None

    def final(self) -> ChatChunk:
        """The last chunk: finish reason and usage."""
        return ChatChunk(finish_reason=self.finish_reason or "COMPLETE", usage=self.usage)


def parse_models(data: dict[str, Any]) -> list[ModelInfo]:
    """``GET /v1/models`` as :class:`ModelInfo` s."""
    models = []
    for item in data.get("models") or []:
        if isinstance(item, dict) and item.get("name"):
            context = item.get("context_length")
            models.append(
                ModelInfo(
                    id=str(item["name"]),
                    context_window=int(context) if isinstance(context, int | float) else None,
                    owned_by="cohere",
                )
            )
    return models


def build_embed_body(model: str, inputs: list[str], dimensions: int | None = None) -> dict[str, Any]:
    """The JSON body of ``POST /v2/embed``: float vectors of documents (``output_dimension`` if given)."""
    body: dict[str, Any] = {
        "model": model,
        "texts": inputs,
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    if dimensions is not None:
        body["output_dimension"] = dimensions
    return body


def parse_embed_response(data: Any, requested_model: str) -> Embeddings:
    """A v2 embed answer (``embeddings.float``) as :class:`Embeddings`, with the billed input tokens."""
    by_type = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(by_type, dict):
        raise ProviderUnavailable("cohere answered with an unexpected embeddings shape")
    billed = ((data.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
    return Embeddings(
        vectors=vectors("cohere", by_type.get("float")),
        model=requested_model,
        usage=Usage(prompt_tokens=int(billed)) if isinstance(billed, int | float) else None,
    )


class CohereProvider(EmbeddingProvider):
    """Cohere Command models through the v2 Chat API, and Embed models through v2 embed."""

    name = "cohere"
    default_base_url = "https://api.cohere.com"
    embed_batch_size = EMBED_BATCH
    tools = True  # the Command models call tools

    async def can_see(self, model: str) -> bool:
        """Only Cohere's vision models read images."""
        return model_sees(model)

    def headers(self, credential: Credential) -> dict[str, str]:
        """The bearer key header."""
        return {"Authorization": f"Bearer {credential.api_key}"}

    async def _fetch_models(self, credential: Credential) -> list[ModelInfo]:
        data = await self.http.json(
            "GET",
            f"{self.base_url(credential)}/v1/models",
            headers=self.headers(credential),
            params={"endpoint": "chat", "page_size": "1000"},
            secret=credential.api_key,
        )
        return parse_models(data if isinstance(data, dict) else {})

    def chat_endpoint(self, credential: Credential, request: ChatRequest, *, stream: bool) -> Endpoint:
        """``/v2/chat``, streamed or not."""
        return Endpoint(f"{self.base_url(credential)}/v2/chat")

    def request_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return build_body(request, stream=stream)

    def parse_result(self, data: dict[str, Any], request: ChatRequest) -> ChatResult:
        return parse_response(data, request.model)

    def stream_parser(self, request: ChatRequest) -> StreamState:
        return StreamState()

    def embeddings_endpoint(self, credential: Credential, model: str) -> Endpoint:
        """``/v2/embed``."""
        return Endpoint(f"{self.base_url(credential)}/v2/embed")

    def embeddings_body(self, model: str, inputs: list[str], dimensions: int | None) -> dict[str, Any]:
        return build_embed_body(model, inputs, dimensions)

    def parse_embeddings(self, data: Any, model: str) -> Embeddings:
        return parse_embed_response(data, model)


class CohereSettings(ProviderSettings):
    """``AILAB_COHERE_*``."""

    model_config = SettingsConfigDict(env_prefix="AILAB_COHERE_")

    base_url: str = ""  # empty: https://api.cohere.com
    api_key: SecretStr | None = None


PLUGIN = ProviderPlugin(
    name="cohere",
    settings=CohereSettings,
    factory=CohereProvider,
    credential=CredentialFormat(
        re.compile(r"^[A-Za-z0-9]{40}$"), "a Cohere key: 40 letters and digits", config=BASE_URL_OPTIONAL
    ),
    capabilities=Capabilities(json_schema=True, tools=True, images=True, embeddings=True),
    description="Cohere's v2 Chat and Embed APIs",
)
