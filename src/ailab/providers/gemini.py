"""Google Gemini (AI Studio / Generative Language API), ``v1beta``.

``POST /v1beta/models/{model}:generateContent`` answers JSON; ``:streamGenerateContent?alt=sse`` streams
SSE ``data:`` events, each a partial GenerateContentResponse whose ``usageMetadata`` is cumulative (no
``[DONE]``: the stream just ends). Roles are ``user`` and ``model``; system prompts go in
``systemInstruction``; sampling settings (``seed`` and the penalties too) in ``generationConfig``.

The key travels ONLY in the ``x-goog-api-key`` header, never as ``?key=`` in the URL, where proxies,
access logs and traces would keep it. Google answers an invalid key with 400 ``API_KEY_INVALID`` (not
401); :meth:`GeminiProvider._error_hook` maps that to ProviderAuthError. Structured output is
``responseMimeType: application/json`` with a ``responseSchema`` (:func:`gemini_schema`); without a
schema, ``json_object`` is the MIME type alone.

Tools are ``tools: [{"functionDeclarations": [{name, description, parameters}]}]``, their parameters in
the same schema dialect; the choice is ``toolConfig.functionCallingConfig.mode`` ``AUTO`` / ``ANY`` /
``NONE`` (a named tool: ``ANY`` with ``allowedFunctionNames``). Gemini has no switch for parallel calls, so
``parallel_tool_calls: false`` is refused. The model's calls are ``functionCall`` parts (``{name, args}``,
whole, also when streamed) with no id: each gets a generated one. A result goes back as a
``functionResponse`` part (``{name, response}``: the result's JSON object, or ``{"output": <the result>}``)
in a user turn, named by the call it answers (found by its id in the assistant message of the call);
Gemini pairs calls and results by name and order. Gemini 3 signs its calls (``thoughtSignature``) and
wants the signature back with the call; the gateway is stateless, so it rides in the call's id
(``call_<hex>__thought__<signature>``) and is put back on the way in.

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

import orjson
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.errors import InvalidInput, ProviderAuthError, ProviderError, ProviderUnavailable
from ailab.providers.base import (
    FINISH_TOOL_CALLS,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResult,
    Credential,
    Embeddings,
    ModelInfo,
    ToolCall,
    ToolCallDelta,
    Usage,
    extra_sampling,
    sampling_fields,
    token_count,
    tool_names,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.embeddings import EmbeddingProvider, vector
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint
from ailab.providers.tools import arguments_object, arguments_text, choice_of, new_call_id, refuse
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


THOUGHT = "__thought__"  # between a call's id and the thought signature it carries (module docstring)


def call_id(signature: str | None) -> str:
    """A new call id, carrying Gemini's thought signature when the call has one."""
    return new_call_id() + (THOUGHT + signature if signature else "")


def signature_of(call_id: str) -> str | None:
    """The thought signature a call id carries, or None."""
    _, found, signature = call_id.partition(THOUGHT)
    return signature if found and signature else None


def result_object(content: str) -> dict[str, Any]:
    """A tool result as ``functionResponse.response``: its JSON object, or ``{"output": <value>}``."""
    try:
        value: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = content
    return value if isinstance(value, dict) else {"output": value}


def function_parts(message: ChatMessage, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``functionCall`` parts of an assistant's calls, or the ``functionResponse`` part of a result."""
    if message.role == "tool":
        name = names.get(message.tool_call_id or "")
        if name is None:
            raise InvalidInput(
                f"the tool result for call '{message.tool_call_id}' answers no call of an earlier "
                "assistant message (gemini pairs a result with its call by the tool's name)"
            )
        return [{"functionResponse": {"name": name, "response": result_object(message.content)}}]
    parts: list[dict[str, Any]] = [{"text": message.content}] if message.content else []
    for call in message.tool_calls:
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": arguments_object(call)}}
        signature = signature_of(call.id)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def build_body(request: ChatRequest) -> dict[str, Any]:
    """The GenerateContentRequest for ``request`` (the same for streaming and not)."""
    contents: list[dict[str, Any]] = []
    names = tool_names(request.messages)
    for message in request.messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = function_parts(message, names) if message.tool_calls or message.role == "tool" else None
        parts = parts if parts is not None else parts_of(message)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    system = [{"text": m.content} for m in request.messages if m.role == "system"]
    if system:
        body["systemInstruction"] = {"parts": system}
    config = sampling_fields(request, max_tokens="maxOutputTokens", top_p="topP", stop="stopSequences")
    config.update(
        extra_sampling(request, presence_penalty="presencePenalty", frequency_penalty="frequencyPenalty")
    )
    if request.response_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = gemini_schema(request.response_schema.schema)
    elif request.json_object:
        config["responseMimeType"] = "application/json"
    if config:
        body["generationConfig"] = config
    body.update(tool_fields(request))
    return body


_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "function": "ANY"}


def tool_fields(request: ChatRequest) -> dict[str, Any]:
    """``tools`` and ``toolConfig`` of a request with tools (see the module docstring)."""
    if not request.tools:
        return {}
    if request.parallel_tool_calls is False:
        raise refuse("gemini", "be kept to one tool call at a time (parallel_tool_calls: false)")
    declarations = []
    for tool in request.tools:
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        if tool.parameters.get("properties"):  # Gemini refuses an OBJECT without properties
            declaration["parameters"] = gemini_schema(tool.parameters, f"tool '{tool.name}'")
        declarations.append(declaration)
    fields: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = choice_of(request)
    if choice is not None:
        config: dict[str, Any] = {"mode": _MODES[choice.mode]}
        if choice.mode == "function":
            config["allowedFunctionNames"] = [choice.name]
        fields["toolConfig"] = {"functionCallingConfig": config}
    return fields


# Gemini's Schema (an OpenAPI 3.0 subset): the keywords it takes, those left out because they only narrow
# what is valid (Gemini answers 400 "Unknown name" to them), and every other one is refused: it would
# change what the model is asked for.
_KEPT = (
    "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "default",
    "minimum", "maximum",
)  # fmt: skip
_HANDLED = ("type", "properties", "items", "anyOf", "oneOf", "const", "$ref", "$defs", "definitions")
_LEFT_OUT = frozenset(
    {
        "additionalProperties", "$schema", "$id", "$comment", "examples", "uniqueItems", "multipleOf",
        "exclusiveMinimum", "exclusiveMaximum", "readOnly", "writeOnly", "deprecated", "strict",
        "contentEncoding", "contentMediaType",
    }
)  # fmt: skip
_KNOWN = frozenset((*_HANDLED, *_KEPT, *_LEFT_OUT))
_NULL = {"type": "null"}


def gemini_schema(schema: Mapping[str, Any], where: str = "the schema") -> dict[str, Any]:
    """A JSON schema in Gemini's ``Schema`` dialect (an OpenAPI subset), for a ``responseSchema`` or a
    function's ``parameters``.

    Types are upper case, properties keep their order through ``propertyOrdering``; ``["string",
    "null"]`` and ``anyOf: [X, {"type": "null"}]`` become ``nullable``, ``oneOf`` is ``anyOf``, a
    ``const`` string an ``enum`` of one, and local ``$ref`` s (``#/$defs/...``, as pydantic writes them)
    are inlined. Keywords that only narrow what is valid (``additionalProperties``, ``uniqueItems``...)
    are left out; any other Gemini does not know (``allOf``, ``not``, ``if``, a recursive ``$ref``...) is
    refused with :class:`~ailab.errors.InvalidInput` naming it, rather than silently loosened.
    """
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return _convert(schema, definitions, where, ())


def _convert(
    schema: Mapping[str, Any], definitions: Mapping[str, Any], where: str, seen: tuple[str, ...]
) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is not None:
        name = str(ref).rpartition("/")[2]
        if not str(ref).startswith(("#/$defs/", "#/definitions/")) or name not in definitions:
            raise InvalidInput(f"gemini cannot take {where}: only local $refs (#/$defs/...) are resolved")
        if name in seen:
            raise InvalidInput(f"gemini cannot take {where}: '{name}' refers to itself")
        inlined = {**definitions[name], **{key: value for key, value in schema.items() if key != "$ref"}}
        return _convert(inlined, definitions, where, (*seen, name))
    unknown = sorted(key for key in schema if key not in _KNOWN)
    if unknown:
        raise InvalidInput(f"gemini cannot take {where}: its schema keyword '{unknown[0]}' is not supported")
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != 1:
            raise InvalidInput(f"gemini cannot take {where}: a value of several types {kind}")
        kind = kinds[0]
        if len(kinds) < len(schema["type"]):
            out["nullable"] = True
    if isinstance(kind, str):
        out["type"] = kind.upper()
    out.update({key: schema[key] for key in _KEPT if key in schema})
    if "const" in schema:
        if not isinstance(schema["const"], str):
            raise InvalidInput(f"gemini cannot take {where}: a 'const' that is not a string")
        out["enum"] = [schema["const"]]
        out.setdefault("type", "STRING")
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {
            name: _convert(value, definitions, where, seen) for name, value in properties.items()
        }
        out["propertyOrdering"] = list(properties)
    items = schema.get("items")
    if isinstance(items, Mapping):
        out["items"] = _convert(items, definitions, where, seen)
    options = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(options, list):
        others = [option for option in options if option != _NULL]
        if len(others) == 1 and len(others) < len(options):  # Optional[X]: X, nullable
            return {**_convert(others[0], definitions, where, seen), **out, "nullable": True}
        out["anyOf"] = [_convert(option, definitions, where, seen) for option in options]
    return out


def parse_usage(data: Any) -> Usage | None:
    """``usageMetadata`` or None."""
    if not isinstance(data, dict):
        return None
    return Usage(token_count(data.get("promptTokenCount")), token_count(data.get("candidatesTokenCount")))


def candidate_text(data: dict[str, Any]) -> tuple[str, str | None]:
    """The first candidate's text and finish reason (a blocked prompt gives its block reason)."""
    candidates = data.get("candidates") or []
    if not candidates:
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        return "", str(blocked) if blocked else None
    first = candidates[0]
    text = "".join(part.get("text", "") for part in _parts(data) if not part.get("thought"))
    return text, first.get("finishReason")


def _parts(data: dict[str, Any]) -> list[dict[str, Any]]:
    candidates = data.get("candidates") or []
    parts = ((candidates[0] if candidates else {}).get("content") or {}).get("parts") or []
    return [part for part in parts if isinstance(part, dict)]


def candidate_calls(data: dict[str, Any]) -> list[ToolCall]:
    """The first candidate's ``functionCall`` parts as tool calls, each with a new id."""
    calls = []
    for part in _parts(data):
        call = part.get("functionCall")
        if isinstance(call, dict) and call.get("name"):
            signature = part.get("thoughtSignature")
            new_id = call_id(signature if isinstance(signature, str) else None)
            calls.append(ToolCall(new_id, str(call["name"]), arguments_text(call.get("args"))))
    return calls


def parse_response(data: dict[str, Any], requested_model: str) -> ChatResult:
    """A GenerateContentResponse as a :class:`ChatResult` (with its function calls, if any)."""
    text, finish = candidate_text(data)
    calls = tuple(candidate_calls(data))
    return ChatResult(
        content=text,
        model=data.get("modelVersion") or requested_model,
        usage=parse_usage(data.get("usageMetadata")),
        finish_reason=FINISH_TOOL_CALLS if calls and finish in (None, "STOP") else finish,
        tool_calls=calls,
    )


class StreamState:
    """Turns streamed GenerateContentResponses into :class:`ChatChunk` s (usage: the last one seen)."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False  # Gemini sends no end event: the stream simply ends
        self.calls = 0

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text (and whole function calls) of one event, or None; an ``error`` object is raised."""
        if isinstance(data.get("error"), dict):
            error = data["error"]
            raise status_error("gemini", int(error.get("code") or 500), str(error.get("message")))
        usage = parse_usage(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        text, finish = candidate_text(data)
        self.finish_reason = finish or self.finish_reason
        deltas = []
        for call in candidate_calls(data):  # a call comes whole: one piece with everything
            deltas.append(ToolCallDelta(self.calls, id=call.id, name=call.name, arguments=call.arguments))
            self.calls += 1
        return ChatChunk(delta=text, tool_calls=tuple(deltas)) if text or deltas else None

    def final(self) -> ChatChunk:
        """The last chunk: finish reason and usage."""
        finish = self.finish_reason or "STOP"
        if self.calls and finish == "STOP":
            finish = FINISH_TOOL_CALLS
        return ChatChunk(finish_reason=finish, usage=self.usage)


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
    tools = True  # function calling: every current Gemini model

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

    def parse_result(self, data: dict[str, Any], request: ChatRequest) -> ChatResult:
        return parse_response(data, request.model)

    def stream_parser(self, request: ChatRequest) -> StreamState:
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
    # responseSchema; functionDeclarations; inlineData parts; batchEmbedContents
    capabilities=Capabilities(json_schema=True, tools=True, images=True, embeddings=True),
    aliases=("google",),
    description="Google Gemini (AI Studio, v1beta)",
)
