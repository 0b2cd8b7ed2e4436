"""Ollama's native API: ``POST /api/chat`` (NDJSON streaming) and ``GET /api/tags`` for the models.

No key is needed; one is sent as a bearer token when set (for an Ollama behind an authenticating proxy).
Ollama streams by default, so ``stream`` is always sent explicitly. Each streamed line is a JSON object
with ``message.content``; the last has ``"done": true`` with ``prompt_eval_count`` / ``eval_count`` (the
token counts). An unreachable Ollama makes :meth:`OllamaProvider.list_models` raise ProviderUnavailable,
so the registry skips it. Structured output is a JSON schema in ``format`` (``"json"``: any JSON).

Tools are OpenAI's shape in ``tools``. Ollama has no tool choice: ``none`` leaves the tools out, and a
choice it cannot enforce (``required``, a named tool) or ``parallel_tool_calls: false`` is refused. The
model's calls are ``message.tool_calls`` (``{"function": {"name", "arguments": <an object>}}``), with no
ids: each gets a generated one. Streamed, every call comes whole, in one line. A result goes back as a
``tool`` message with the ``tool_name`` of its call (found by its id in the assistant message of the
call). Whether a model calls tools, ``/api/show`` says (``"tools"`` among its ``capabilities``).

A message's images go in its ``images`` list, as bare base64. Whether a model reads them, Ollama says:
``POST /api/show`` lists its ``capabilities`` (``"vision"`` among them; an Ollama older than that list
showed a vision model's ``projector_info``). The answer is kept per server and model for the
life of the process, so only the first request with images (or tools) to a model asks.

Embeddings are ``POST /api/embed`` with ``{"model", "input": [...]}``, answering ``{"embeddings":
[[...]], "prompt_eval_count": n}``; Ollama sets no batch limit, so 256 texts per call keep each request
(and the memory it takes on a small machine) bounded.
"""

from __future__ import annotations

import base64
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
    CredentialStore,
    Embeddings,
    ModelInfo,
    ProviderHealth,
    ToolCall,
    ToolCallDelta,
    Usage,
    extra_sampling,
    sampling_fields,
    token_count,
    tool_names,
)
from ailab.providers.credentials import BASE_URL_REQUIRED, CredentialFormat
from ailab.providers.embeddings import EmbeddingProvider, vectors
from ailab.providers.openai_wire import tool_json
from ailab.providers.plugin import Capabilities, ProviderContext, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint
from ailab.providers.tools import arguments_object, arguments_text, choice_of, new_call_id, refuse
from ailab.providers.upstream_errors import status_error

MAX_KNOWN_MODELS = 256  # models whose capabilities are remembered (their names come from callers)
EMBED_BATCH = 256  # texts per /api/embed call


def message_json(message: ChatMessage, names: dict[str, str] | None = None) -> dict[str, Any]:
    """One message of ``/api/chat``: its images (if any) as bare base64, an assistant's tool calls (their
    arguments an object), a tool result's ``tool_name`` (by its call's id in ``names``)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.images:
        out["images"] = [base64.b64encode(image.data).decode("ascii") for image in message.images]
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": call.name, "arguments": arguments_object(call)}}
            for call in message.tool_calls
        ]
    name = (names or {}).get(message.tool_call_id or "") if message.role == "tool" else None
    if name is not None:
        out["tool_name"] = name
    return out


def show_sees(data: Any) -> bool:
    """Whether an ``/api/show`` answer describes a model that reads images."""
    if not isinstance(data, dict):
        return False
    capabilities = data.get("capabilities")
    if isinstance(capabilities, list):
        return "vision" in capabilities
    return bool(data.get("projector_info"))  # an Ollama older than the capabilities list


def show_calls_tools(data: Any) -> bool:
    """Whether an ``/api/show`` answer describes a model that calls tools (an Ollama too old to list
    capabilities cannot tell: True, and the server judges)."""
    capabilities = data.get("capabilities") if isinstance(data, dict) else None
    return "tools" in capabilities if isinstance(capabilities, list) else True


def build_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /api/chat`` for ``request`` (sampling settings, seed and penalties too,
    under ``options``)."""
    names = tool_names(request.messages)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_json(m, names) for m in request.messages],
        "stream": stream,
    }
    options = {**sampling_fields(request, max_tokens="num_predict"), **extra_sampling(request)}
    if options:
        body["options"] = options
    if request.response_schema is not None:
        body["format"] = dict(request.response_schema.schema)  # Ollama >= 0.5: a JSON schema
    elif request.json_object:
        body["format"] = "json"
    body.update(tool_fields(request))
    return body


def tool_fields(request: ChatRequest) -> dict[str, Any]:
    """``tools`` of a request with tools (see the module docstring for the choices refused)."""
    if not request.tools:
        return {}
    choice = choice_of(request)
    if choice is not None and choice.mode in ("required", "function"):
        raise refuse("ollama", f"force a tool call (tool_choice '{choice.name or choice.mode}')")
    if request.parallel_tool_calls is False:
        raise refuse("ollama", "be kept to one tool call at a time (parallel_tool_calls: false)")
    if choice is not None and choice.mode == "none":
        return {}  # no tool offered: none can be called
    return {"tools": [tool_json(tool) for tool in request.tools]}


def parse_tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    """A message's ``tool_calls`` (arguments an object), each with its id or a new one."""
    calls = []
    for item in message.get("tool_calls") or []:
        function = item.get("function") if isinstance(item, dict) else None
        if isinstance(function, dict) and function.get("name"):
            call_id = str(item.get("id") or new_call_id())
            calls.append(ToolCall(call_id, str(function["name"]), arguments_text(function.get("arguments"))))
    return tuple(calls)


def parse_usage(data: dict[str, Any]) -> Usage | None:
    """The token counts of a final (``done``) object, or None."""
    if "prompt_eval_count" not in data and "eval_count" not in data:
        return None
    return Usage(token_count(data.get("prompt_eval_count")), token_count(data.get("eval_count")))


def parse_response(data: dict[str, Any], requested_model: str) -> ChatResult:
    """A non-streamed ``/api/chat`` answer as a :class:`ChatResult`."""
    message = data.get("message") or {}
    calls = parse_tool_calls(message)
    finish = data.get("done_reason") or ("stop" if data.get("done") else None)
    return ChatResult(
        content=message.get("content") or "",
        model=data.get("model") or requested_model,
        usage=parse_usage(data),
        finish_reason=FINISH_TOOL_CALLS if calls and finish == "stop" else finish,
        tool_calls=calls,
    )


class StreamState:
    """Turns streamed ``/api/chat`` lines into :class:`ChatChunk` s."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.calls = 0

    def feed(self, data: dict[str, Any]) -> ChatChunk | None:
        """The text (and whole tool calls) of one line, or None; an ``{"error": ...}`` line is raised."""
        if data.get("error"):
            raise ProviderUnavailable(f"ollama failed mid-stream: {data['error']}")
        message = data.get("message") or {}
        text = message.get("content") or ""
        deltas = []
        for call in parse_tool_calls(message):  # a call comes whole: one piece with everything
            deltas.append(ToolCallDelta(self.calls, id=call.id, name=call.name, arguments=call.arguments))
            self.calls += 1
        if data.get("done"):
            self.done = True
            self.usage = parse_usage(data)
            self.finish_reason = data.get("done_reason") or "stop"
        return ChatChunk(delta=text, tool_calls=tuple(deltas)) if text or deltas else None

    def final(self) -> ChatChunk:
        """The last chunk: finish reason and usage."""
        finish = self.finish_reason or "stop"
        if self.calls and finish == "stop":
            finish = FINISH_TOOL_CALLS
        return ChatChunk(finish_reason=finish, usage=self.usage)


def parse_models(data: dict[str, Any]) -> list[ModelInfo]:
    """``GET /api/tags`` as :class:`ModelInfo` s (names as Ollama gives them, e.g. ``llama3:latest``)."""
    return [
        ModelInfo(
            id=str(item.get("name") or item.get("model")),
            owned_by="ollama",
            size_bytes=item["size"] if isinstance(item.get("size"), int) else None,
        )
        for item in data.get("models") or []
        if isinstance(item, dict) and (item.get("name") or item.get("model"))
    ]


def build_embed_body(model: str, inputs: list[str], dimensions: int | None = None) -> dict[str, Any]:
    """The JSON body of ``POST /api/embed`` (``dimensions`` where the model can shorten its vectors)."""
    body: dict[str, Any] = {"model": model, "input": inputs}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def parse_embed_response(data: Any, requested_model: str) -> Embeddings:
    """An ``/api/embed`` answer as :class:`Embeddings`; an ``{"error": ...}`` answer is raised."""
    if not isinstance(data, dict):
        raise ProviderUnavailable("ollama answered with an unexpected embeddings shape")
    if data.get("error"):
        raise status_error("ollama", 500, str(data["error"]))
    usage = parse_usage(data)
    return Embeddings(
        vectors=vectors("ollama", data.get("embeddings")),
        model=str(data.get("model") or requested_model),
        usage=Usage(prompt_tokens=usage.prompt_tokens) if usage is not None else None,
    )


class OllamaProvider(EmbeddingProvider):
    """A local or remote Ollama server."""

    stream_format = "ndjson"
    name = "ollama"
    key_required = False
    default_base_url = "http://127.0.0.1:11434"
    embed_batch_size = EMBED_BATCH

    def __init__(
        self,
        settings: ProviderSettings,
        credentials: CredentialStore,
        context: ProviderContext,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(settings, credentials, context, name=name)
        self._shown: dict[tuple[str, str], Any] = {}  # (base URL, model) -> its /api/show answer

    async def _show(self, model: str) -> Any:
        """``/api/show`` of ``model``, asked once per server and model.

        An unknown model raises ModelNotFound, an unreachable server ProviderUnavailable.
        """
        credential = await self.require_credential()
        base = self.base_url(credential)
        if (base, model) in self._shown:
            return self._shown[(base, model)]
        data = await self.http.json(
            "POST",
            f"{base}/api/show",
            headers=self.headers(credential),
            body={"model": model},
            secret=credential.api_key,
        )
        if len(self._shown) >= MAX_KNOWN_MODELS:
            self._shown.clear()
        # Only what is asked of it is kept, not the modelfile and template it carries.
        kept = (
            {k: data[k] for k in ("capabilities", "projector_info") if k in data}
            if isinstance(data, dict)
            else None
        )
        self._shown[(base, model)] = kept
        return kept

    async def can_see(self, model: str) -> bool:
        """Whether ``model`` reads images, as its ``/api/show`` says."""
        return show_sees(await self._show(model))

    async def can_use_tools(self, model: str) -> bool:
        """Whether ``model`` calls tools, as its ``/api/show`` says."""
        return show_calls_tools(await self._show(model))

    def headers(self, credential: Credential) -> dict[str, str]:
        """A bearer header only when a key is set."""
        return {"Authorization": f"Bearer {credential.api_key}"} if credential.api_key else {}

    async def _fetch_models(self, credential: Credential) -> list[ModelInfo]:
        data = await self.http.json(
            "GET",
            f"{self.base_url(credential)}/api/tags",
            headers=self.headers(credential),
            secret=credential.api_key,
        )
        return parse_models(data if isinstance(data, dict) else {})

    async def list_models(self) -> list[ModelInfo]:
        """The pulled models; ProviderUnavailable when Ollama does not answer."""
        return await self._fetch_models(await self.require_credential())

    async def health(self) -> ProviderHealth:
        """A model listing (errors raised, as for the other providers)."""
        models = await self.list_models()
        return ProviderHealth(ok=True, detail=f"{len(models)} models available")

    def chat_endpoint(self, credential: Credential, request: ChatRequest, *, stream: bool) -> Endpoint:
        """``/api/chat``; streamed answers are NDJSON."""
        return Endpoint(f"{self.base_url(credential)}/api/chat")

    def request_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return build_body(request, stream=stream)

    def parse_result(self, data: dict[str, Any], request: ChatRequest) -> ChatResult:
        """The answer; Ollama reports some failures as a 200 with an ``error`` field."""
        if data.get("error"):
            raise status_error(self.name, 500, str(data["error"]))
        return parse_response(data, request.model)

    def stream_parser(self, request: ChatRequest) -> StreamState:
        return StreamState()

    def embeddings_endpoint(self, credential: Credential, model: str) -> Endpoint:
        """``/api/embed`` (the batch endpoint; ``/api/embeddings`` is its deprecated one-text form)."""
        return Endpoint(f"{self.base_url(credential)}/api/embed")

    def embeddings_body(self, model: str, inputs: list[str], dimensions: int | None) -> dict[str, Any]:
        return build_embed_body(model, inputs, dimensions)

    def parse_embeddings(self, data: Any, model: str) -> Embeddings:
        return parse_embed_response(data, model)


class OllamaSettings(ProviderSettings):
    """``AILAB_OLLAMA_*``: where Ollama listens (no key needed; one is sent when set)."""

    model_config = SettingsConfigDict(env_prefix="AILAB_OLLAMA_")

    base_url: str = "http://127.0.0.1:11434"
    api_key: SecretStr | None = None


PLUGIN = ProviderPlugin(
    name="ollama",
    settings=OllamaSettings,
    factory=OllamaProvider,
    credential=CredentialFormat(
        None,
        "an optional key (printable, no spaces) with config base_url http(s)://host:port",
        key_required=False,
        config=BASE_URL_REQUIRED,
    ),
    # format: <schema>; tools (the models that call them); images (the models that see)
    capabilities=Capabilities(json_schema=True, tools=True, images=True, embeddings=True),
    description="An Ollama server (always registered; no key needed)",
)
