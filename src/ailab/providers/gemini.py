"""Google Gemini (AI Studio / Generative Language API), ``v1beta``.

``POST /v1beta/models/{model}:generateContent`` answers JSON; ``:streamGenerateContent?alt=sse`` streams
SSE ``data:`` events, each a partial GenerateContentResponse whose ``usageMetadata`` is cumulative (no
``[DONE]``: the stream just ends). Roles are ``user`` and ``model``; system prompts go in
``systemInstruction``; sampling settings in ``generationConfig``.

The key travels ONLY in the ``x-goog-api-key`` header, never as ``?key=`` in the URL, where proxies,
access logs and traces would keep it. Google answers an invalid key with 400 ``API_KEY_INVALID`` (not
401); :meth:`GeminiProvider._error_hook` maps that to ProviderAuthError. Structured output is
``responseMimeType: application/json`` with a ``responseSchema`` (:func:`gemini_schema`).

Every Gemini model reads images: a message's images are ``inlineData`` parts (camelCase, as the rest of
this body; the REST API takes ``inline_data`` too), before its text part, as Google's guide advises.

Embeddings are ``POST /v1beta/models/{model}:batchEmbedContents`` with one ``requests`` item per text
(each naming the model again, as the API requires), at most 100 per call, answering
``{"embeddings": [{"values": [...]}]}`` in order. The answer counts no tokens, so the usage is None.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.errors import ProviderAuthError, ProviderError, ProviderUnavailable
from ailab.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResult,
    Credential,
    Embeddings,
    ModelInfo,
    Usage,
    sampling_fields,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.embeddings import EmbeddingProvider, vector
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint
from ailab.providers.upstream_errors import status_error

API_PREFIX = "/v1beta"
MAX_MODEL_PAGES = 10
EMBED_BATCH = 100  # requests per batchEmbedContents call


def model_path(model: str) -> str:
    """``models/<name>`` with the name quoted so it cannot change the URL's path or query."""
    return "models/" + quote(model.removeprefix("models/"), safe="-._")


def parts_of(message: ChatMessage) -> list[dict[str, Any]]:
    """A message's parts: its text, or its images' ``inlineData`` parts and then its text (if any)."""
    if not message.images:
        return [{"text": message.content}]
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": image.media_type, "data": base64.b64encode(image.data).decode("ascii")}}
        for image in message.images
    ]
    return parts + ([{"text": message.content}] if message.content else [])


def build_body(request: ChatRequest) -> dict[str, Any]:
    """The GenerateContentRequest for ``request`` (the same for streaming and not)."""
    contents: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts_of(message)
        else:
            contents.append({"role": role, "parts": parts_of(message)})
    body: dict[str, Any] = {"contents": contents}
    system = [{"text": m.content} for m in request.messages if m.role == "system"]
    if system:
        body["systemInstruction"] = {"parts": system}
    config = sampling_fields(request, max_tokens="maxOutputTokens", top_p="topP", stop="stopSequences")
    if request.response_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = gemini_schema(request.response_schema.schema)
    if config:
        body["generationConfig"] = config
    return body


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON schema in Gemini's ``responseSchema`` dialect (an OpenAPI subset).

    Types are upper case, properties keep their order through ``propertyOrdering``, and keywords it
    refuses (``additionalProperties``: Gemini answers 400 "Unknown name") are left out.
    """
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, str):
        out["type"] = kind.upper()
    for key in ("description", "enum", "format", "nullable", "required", "minItems", "maxItems"):
        if key in schema:
            out[key] = schema[key]
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {name: gemini_schema(value) for name, value in properties.items()}
        out["propertyOrdering"] = list(properties)
    items = schema.get("items")
    if isinstance(items, Mapping):
        out["items"] = gemini_schema(items)
    return out


def parse_usage(data: Any) -> Usage | None:
    """``usageMetadata`` or None."""
    if not isinstance(data, dict):
        return None
    return Usage(int(data.get("promptTokenCount") or 0), int(data.get("candidatesTokenCount") or 0))


def candidate_text(data: dict[str, Any]) -> tuple[str, str | None]:
    """The first candidate's text and finish reason (a blocked prompt gives its block reason)."""
    candidates = data.get("candidates") or []
    if not candidates:
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        return "", str(blocked) if blocked else None
    first = candidates[0]
    parts = (first.get("content") or {}).get("parts") or []
    text = "".join(part.get("text", "") for part in parts if not part.get("thought"))
    return text, first.get("finishReason")


def parse_response(data: dict[str, Any], requested_model: str) -> ChatResult:
    """A GenerateContentResponse as a :class:`ChatResult`."""
    text, finish = candidate_text(data)
    return ChatResult(
        content=text,
        model=data.get("modelVersion") or requested_model,
        usage=parse_usage(data.get("usageMetadata")),
        finish_reason=finish,
    )


class StreamState:
    """Turns streamed GenerateContentResponses into :class:`ChatChunk` s (usage: the last one seen)."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False  # Gemini sends no end event: the stream simply ends

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text of one event, or None; an ``error`` object is raised."""
        if isinstance(data.get("error"), dict):
            error = data["error"]
            raise status_error("gemini", int(error.get("code") or 500), str(error.get("message")))
        usage = parse_usage(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        text, finish = candidate_text(data)
        self.finish_reason = finish or self.finish_reason
        return ChatChunk(delta=text) if text else None

    def final(self) -> ChatChunk:
        """The last chunk: finish reason and usage."""
        return ChatChunk(finish_reason=self.finish_reason or "STOP", usage=self.usage)


def parse_models(data: dict[str, Any]) -> list[ModelInfo]:
    """The models of ``GET /v1beta/models`` that can generate content (names without ``models/``)."""
    models = []
    for item in data.get("models") or []:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        if "generateContent" not in (item.get("supportedGenerationMethods") or ["generateContent"]):
            continue
        limit = item.get("inputTokenLimit")
        models.append(
            ModelInfo(
                id=str(item["name"]).removeprefix("models/"),
                context_window=int(limit) if isinstance(limit, int) else None,
                owned_by="google",
            )
        )
    return models


def build_embed_body(model: str, inputs: list[str], dimensions: int | None = None) -> dict[str, Any]:
    """The BatchEmbedContentsRequest for ``inputs``: one request per text, each naming the model."""
    path = model_path(model)
    extra: dict[str, Any] = {"outputDimensionality": dimensions} if dimensions is not None else {}
    return {"requests": [{"model": path, "content": {"parts": [{"text": text}]}, **extra} for text in inputs]}


def parse_embed_response(data: Any, requested_model: str) -> Embeddings:
    """A BatchEmbedContentsResponse as :class:`Embeddings` (usage only where the answer counts tokens)."""
    items = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ProviderUnavailable("gemini answered with an unexpected embeddings shape")
    found = [vector("gemini", item.get("values") if isinstance(item, dict) else None) for item in items]
    metadata = data.get("usageMetadata") if isinstance(data, dict) else None
    usage = None
    if isinstance(metadata, dict) and isinstance(metadata.get("promptTokenCount"), int):
        usage = Usage(prompt_tokens=metadata["promptTokenCount"])
    return Embeddings(vectors=found, model=requested_model, usage=usage)


class GeminiProvider(EmbeddingProvider):
    """Gemini models through the Generative Language API."""

    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    embed_batch_size = EMBED_BATCH

    async def can_see(self, model: str) -> bool:
        """True: every Gemini model reads images."""
        return True

    def headers(self, credential: Credential) -> dict[str, str]:
        """The key header (the key never goes in the URL)."""
        return {"x-goog-api-key": credential.api_key or ""}

    def _error_hook(self, status: int, body: bytes, message: str) -> ProviderError | None:
        if status == 400 and (b"API_KEY_INVALID" in body or b"API key not valid" in body):
            return ProviderAuthError(
                f"gemini refused the credentials ({message}); set a valid key with "
                "`ai-lab keys set gemini` or AILAB_GEMINI_API_KEY"
            )
        return None

    async def _fetch_models(self, credential: Credential) -> list[ModelInfo]:
        models: list[ModelInfo] = []
        params = {"pageSize": "1000"}
        for _ in range(MAX_MODEL_PAGES):
            data = await self.http.json(
                "GET",
                f"{self.base_url(credential)}{API_PREFIX}/models",
                headers=self.headers(credential),
                params=params,
                secret=credential.api_key,
            )
            if not isinstance(data, dict):
                break
            models += parse_models(data)
            token = data.get("nextPageToken")
            if not token:
                break
            params = {"pageSize": "1000", "pageToken": str(token)}
        return models

    def chat_endpoint(self, credential: Credential, request: ChatRequest, *, stream: bool) -> Endpoint:
        """``:generateContent``, or ``:streamGenerateContent?alt=sse``; the key never in the URL."""
        base = f"{self.base_url(credential)}{API_PREFIX}/{model_path(request.model)}"
        if stream:
            return Endpoint(f"{base}:streamGenerateContent", {"alt": "sse"})
        return Endpoint(f"{base}:generateContent")

    def request_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return build_body(request)

    def parse_result(self, data: dict[str, Any], model: str) -> ChatResult:
        return parse_response(data, model)

    def stream_parser(self) -> StreamState:
        return StreamState()

    def embeddings_endpoint(self, credential: Credential, model: str) -> Endpoint:
        """``:batchEmbedContents``; the key never in the URL."""
        return Endpoint(f"{self.base_url(credential)}{API_PREFIX}/{model_path(model)}:batchEmbedContents")

    def embeddings_body(self, model: str, inputs: list[str], dimensions: int | None) -> dict[str, Any]:
        return build_embed_body(model, inputs, dimensions)

    def parse_embeddings(self, data: Any, model: str) -> Embeddings:
        return parse_embed_response(data, model)


class GeminiSettings(ProviderSettings):
    """``AILAB_GEMINI_*``."""

    model_config = SettingsConfigDict(env_prefix="AILAB_GEMINI_")

    base_url: str = ""  # empty: https://generativelanguage.googleapis.com
    api_key: SecretStr | None = None


PLUGIN = ProviderPlugin(
    name="gemini",
    settings=GeminiSettings,
    factory=GeminiProvider,
    credential=CredentialFormat(
        re.compile(r"^AIza[0-9A-Za-z_-]{35}$"),
        "a Google AI Studio key: 39 characters starting with 'AIza'",
        config=BASE_URL_OPTIONAL,
    ),
    # responseSchema; inlineData parts; batchEmbedContents
    capabilities=Capabilities(json_schema=True, images=True, embeddings=True),
    aliases=("google",),
    description="Google Gemini (AI Studio, v1beta)",
)
