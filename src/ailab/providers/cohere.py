"""Cohere's v2 Chat API: ``POST /v2/chat`` with a bearer key; models from ``GET /v1/models``.

Messages keep OpenAI's roles (system, user, assistant); the answer's text is in ``message.content[]``;
usage is ``usage.tokens`` (``billed_units`` as a fallback). A stream is SSE whose ``data:`` objects carry
a ``type``::

    message-start -> content-start -> content-delta* (delta.message.content.text) -> content-end
    -> message-end (delta.finish_reason, delta.usage)

Structured output is ``response_format: {"type": "json_object", "json_schema": ...}``.

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
    ChatChunk,
    ChatRequest,
    ChatResult,
    Credential,
    Embeddings,
    ModelInfo,
    Usage,
    sampling_fields,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.embeddings import EmbeddingProvider, vectors
from ailab.providers.openai_wire import message_json
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint

_SEES = re.compile(r"^(?:command-a-vision|c4ai-aya-vision)")
EMBED_BATCH = 96  # texts per /v2/embed call


def model_sees(model: str) -> bool:
    """Whether a Cohere model reads images (the vision ones; see the module docstring)."""
    return _SEES.match(model) is not None


def build_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v2/chat`` for ``request``."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_json(m) for m in request.messages],
        "stream": stream,
    }
    body.update(sampling_fields(request, top_p="p", stop="stop_sequences"))
    if request.response_schema is not None:
        body["response_format"] = {"type": "json_object", "json_schema": dict(request.response_schema.schema)}
    return body


def parse_usage(data: Any) -> Usage | None:
    """``usage`` (its ``tokens``, else ``billed_units``) or None."""
    if not isinstance(data, dict):
        return None
    counts = data.get("tokens") or data.get("billed_units") or {}
    return Usage(int(counts.get("input_tokens") or 0), int(counts.get("output_tokens") or 0))


def parse_response(data: dict[str, Any], requested_model: str) -> ChatResult:
    """A v2 chat answer as a :class:`ChatResult`."""
    content = (data.get("message") or {}).get("content") or []
    text = "".join(part.get("text", "") for part in content if part.get("type", "text") == "text")
    return ChatResult(
        content=text,
        model=requested_model,
        usage=parse_usage(data.get("usage")),
        finish_reason=data.get("finish_reason"),
    )


class StreamState:
    """Turns v2 stream events into :class:`ChatChunk` s."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text of one event, or None."""
        kind = data.get("type")
        delta = data.get("delta") or {}
        if kind == "content-delta":
            text = ((delta.get("message") or {}).get("content") or {}).get("text") or ""
            return ChatChunk(delta=text) if text else None
        if kind == "message-end":
            self.finish_reason = delta.get("finish_reason")
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

    def parse_result(self, data: dict[str, Any], model: str) -> ChatResult:
        return parse_response(data, model)

    def stream_parser(self) -> StreamState:
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
    capabilities=Capabilities(json_schema=True, images=True, embeddings=True),
    description="Cohere's v2 Chat and Embed APIs",
)
