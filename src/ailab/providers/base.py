"""The provider protocol: what every model backend implements.

A provider is created once per process by its factory (the object its entry point names) and shared by
all requests. It turns a :class:`ChatRequest` into its backend's wire format, sends it over one pooled
client session, and turns the answer back into :class:`ChatResult` or a stream of :class:`ChatChunk`.
The translation to and from the wire format is kept in pure functions per module so it can be tested
without HTTP. Errors are raised as the ``ProviderError`` subclasses of :mod:`ailab.errors`.

Credentials are looked up per request through a :class:`CredentialStore` (the vault, then settings), so
a key set or rotated at run time is used at once without a restart.

Tools (function calling) are OpenAI's model, backend-neutral: a request offers :class:`Tool` s and a
:class:`ToolChoice`; the model's answer may be :class:`ToolCall` s (``ChatResult.tool_calls``, finish
reason ``"tool_calls"``; streamed as :class:`ToolCallDelta` s: the first of a call has its id and name,
the next ones pieces of its arguments, as OpenAI streams them); the conversation goes on with the
assistant message that carries the calls and one ``tool`` message per result (``tool_call_id``). A call's
arguments are JSON text, as OpenAI carries them, whatever the backend's own wire says (an object for
Anthropic, Gemini, Ollama). A provider that can call tools says so (:class:`SupportsTools`); the others
refuse a request that uses them (:func:`check_can_use_tools`), never answering as if there were none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, TypeVar, runtime_checkable

from ailab.errors import InvalidInput
from ailab.providers.credentials import Credential

__all__ = [  # Credential is re-exported: it is part of the protocol
    "FINISH_TOOL_CALLS",
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "Credential",
    "CredentialStore",
    "Embeddings",
    "ImagePart",
    "ModelInfo",
    "Provider",
    "ProviderHealth",
    "ResponseSchema",
    "SupportsEmbeddings",
    "SupportsEmbeddingsForward",
    "SupportsOpenAIForward",
    "SupportsRequestCheck",
    "SupportsTools",
    "SupportsVision",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "UpstreamResponse",
    "Usage",
    "check_can_see",
    "check_can_use_tools",
    "check_request",
    "extra_sampling",
    "has_images",
    "implements",
    "sampling_fields",
    "tool_names",
    "uses_tools",
]

FINISH_TOOL_CALLS = "tool_calls"  # the finish reason of an answer that calls tools (OpenAI's word)


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image a message shows the model: its bytes and media type (``image/png``, ``image/jpeg``,
    ``image/webp`` or ``image/gif``), already checked and downscaled. Each backend sends it its own way."""

    media_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call of a tool the model made: the call's id, the tool's name, its arguments as JSON text (an
    object). Backends without call ids (Gemini, Ollama) get generated ones."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation, in the roles every backend knows: system, user, assistant, and
    ``tool`` (a tool's result).

    ``images`` go with the text to a model that can see (a user message's attachments). An assistant
    message may carry the ``tool_calls`` it made (its ``content`` may then be empty); a ``tool`` message
    answers the call whose id is ``tool_call_id``, with the result as ``content``."""

    role: str
    content: str
    images: tuple[ImagePart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseSchema:
    """Structured output: the answer must be one JSON object valid against ``schema``.

    Each backend asks for it its own way (OpenAI's ``json_schema`` response format, a forced Anthropic
    tool, Gemini's ``responseSchema``, Cohere's and Ollama's JSON formats, a llama.cpp grammar) and
    answers the object as JSON text. Keep schemas to what all of them accept: objects whose properties
    are all required, strings (with ``enum``), numbers, booleans and arrays, ``additionalProperties``
    false.
    """

    name: str
    schema: Mapping[str, Any]
    description: str = ""
    # OpenAI's ``strict``: the schema is enforced, not only followed; backends that constrain decoding to
    # a schema (Gemini, Cohere, Ollama, llama.cpp) always do, the others (Anthropic's tool) do their best.
    strict: bool = True


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: its name, what it is for, and the JSON schema of its arguments (an
    object). ``strict`` is OpenAI's (the arguments are held to the schema); backends without it ignore it."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool = False


TOOL_CHOICE_MODES = ("auto", "none", "required", "function")


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether the model may call tools: ``auto`` (it decides), ``none`` (it answers in text),
    ``required`` (it calls at least one), or ``function`` (it calls the tool ``name``)."""

    mode: str = "auto"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat completion request, backend-neutral. ``model`` is the provider's own name (no prefix).

    ``tools`` / ``tool_choice`` / ``parallel_tool_calls`` (None: the backend's default, which lets the
    model make several calls at once) offer functions to call. ``json_object`` asks for an answer that is
    some JSON object (OpenAI's ``json_object`` response format), ``response_schema`` for one valid against
    a schema; a backend with no such mode refuses them.
    """

    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    # Extra OpenAI-style fields a backend may understand (seed, response_format, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)
    response_schema: ResponseSchema | None = None
    # Who asks (a user id): a backend shared by many, like the embedded model, queues fairly by it.
    requester: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    json_object: bool = False


@dataclass(slots=True)  # read-only; made per generation: see GenerationRecord on frozen
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def token_count(value: Any) -> int:
    """A token count as an upstream reported it; 0 for what is none (missing, null, a string, negative):
    a careless server's usage must not fail an answer that is otherwise fine."""
    return int(value) if isinstance(value, int | float) and 0 <= value < 2**63 else 0


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A whole answer."""

    content: str
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call, as OpenAI streams them: ``index`` says which call of the answer;
    its first piece has the call's ``id`` and the tool's ``name``, every piece may add to ``arguments``
    (JSON text, whole only once all pieces are joined)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """A piece of a streamed answer. The last chunk carries ``finish_reason`` and, if known, ``usage``."""

    delta: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model a provider offers; ``id`` is the provider's own name (the gateway prefixes it)."""

    id: str
    context_window: int | None = None
    owned_by: str | None = None
    size_bytes: int | None = None  # of its weights, where the backend says (a GGUF file, Ollama)


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """Whether a provider can serve now, and why not."""

    ok: bool
    detail: str = ""


class CredentialStore(Protocol):
    """Where providers find their credentials (the vault first, then ``AILAB_<PROVIDER>_API_KEY``)."""

    async def get(self, service: str) -> Credential | None:
        """The credential for ``service``, or None when none is configured."""
        ...


@runtime_checkable
class Provider(Protocol):
    """A model backend."""

    name: str  # the prefix of its model ids: "openai", "local", ...

    async def list_models(self) -> list[ModelInfo]:
        """The models this backend offers now."""
        ...

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One whole answer."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The answer token by token; closing the iterator stops the generation."""
        ...

    async def health(self) -> ProviderHealth:
        """A cheap check that the backend answers with the configured credentials."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors of some texts, in their order, and what they cost."""

    vectors: list[list[float]]
    model: str
    usage: Usage | None = None


@runtime_checkable
class SupportsEmbeddings(Protocol):
    """A provider with embedding models."""

    async def embed(self, model: str, inputs: list[str], *, dimensions: int | None = None) -> Embeddings:
        """One vector per input, in order (batched as the backend needs); ``dimensions`` asks for
        shorter vectors, where the model can make them."""
        ...


@dataclass(slots=True)  # read-only; made per request: see GenerationRecord on frozen
class UpstreamResponse:
    """A raw upstream success for pass-through: status, content type and the body as bytes chunks.

    ``secret`` is the key the request carried, so the gateway can scrub it from what it passes on
    (an error event inside a stream may quote it); it is never shown (``repr``) nor logged.
    """

    status: int
    content_type: str
    body: AsyncIterator[bytes]
    secret: str | None = field(default=None, repr=False)


@runtime_checkable
class SupportsOpenAIForward(Protocol):
    """A provider whose backend speaks OpenAI's chat completions wire format.

    The gateway forwards such requests as bytes (only the ``model`` field rewritten) and streams the
    answer back untouched: no re-serialisation on the hot path.
    """

    async def forward_chat_completions(self, payload: dict[str, Any]) -> UpstreamResponse:
        """POST ``payload`` to the upstream's /chat/completions and return the raw answer."""
        ...


@runtime_checkable
class SupportsEmbeddingsForward(Protocol):
    """A provider whose backend may speak OpenAI's embeddings wire format (``POST .../embeddings``).

    The gateway forwards such requests as they came (only ``model`` rewritten), so token arrays,
    ``dimensions`` and base64 answers are the upstream's own work.
    """

    async def forward_embeddings(self, payload: dict[str, Any]) -> UpstreamResponse | None:
        """POST ``payload`` to the upstream's /embeddings and return the raw answer; None when this
        upstream does not speak OpenAI's embeddings wire (the gateway then calls ``embed``)."""
        ...


@runtime_checkable
class SupportsVision(Protocol):
    """A provider that can show its models images (:attr:`ChatMessage.images`) and knows which can see.

    Each backend decides from what it knows of its own models (a name rule, or asking the server, as
    Ollama's ``/api/show`` tells). A provider without this method is taken to have no model that sees:
    it would drop the images, so they are refused instead (:func:`check_can_see`).
    """

    async def can_see(self, model: str) -> bool:
        """Whether ``model`` (the provider's own name) reads images; True where the backend cannot
        tell (the upstream refuses them then, in its own words)."""
        ...


@runtime_checkable
class SupportsTools(Protocol):
    """A provider whose backend can call tools (:attr:`ChatRequest.tools`), and knows which models can.

    A provider without this method is taken to have no model that can: it would drop the tools, so a
    request that uses them is refused instead (:func:`check_can_use_tools`).
    """

    async def can_use_tools(self, model: str) -> bool:
        """Whether ``model`` (the provider's own name) calls tools; True where the backend cannot tell
        (the upstream refuses them then, in its own words)."""
        ...


@runtime_checkable
class SupportsRequestCheck(Protocol):
    """A provider that can tell, before anything is sent, what of a request its wire cannot carry."""

    def check_request(self, request: ChatRequest) -> None:
        """Raise :class:`~ailab.errors.InvalidInput` for what the backend cannot do for ``request`` (a
        tool choice it cannot force, a schema keyword it does not know...); nothing is sent."""
        ...


def uses_tools(request: ChatRequest) -> bool:
    """Whether ``request`` offers tools or holds a conversation with tool calls or results."""
    return (
        bool(request.tools)
        or request.tool_choice is not None
        or any(message.tool_calls or message.role == "tool" for message in request.messages)
    )


def tool_names(messages: list[ChatMessage]) -> dict[str, str]:
    """The tool name of every call id the assistant messages carry: the backends that pair a result
    with its call by the tool's name (Gemini, Ollama) look it up here."""
    return {call.id: call.name for message in messages for call in message.tool_calls}


def has_images(request: ChatRequest) -> bool:
    """Whether any message of ``request`` shows an image."""
    return any(message.images for message in request.messages)


_P = TypeVar("_P")
_IMPLEMENTS: dict[tuple[type, type], bool] = {}


def implements(provider: object, protocol: type[_P]) -> TypeGuard[_P]:
    """``isinstance(provider, protocol)`` for one of these runtime-checkable protocols, known per class.

    Checking an object against a Protocol walks the protocol's members each time (about 10 us here), and
    a turn asks several; a provider's abilities are its class's methods, so the answer is kept per class.
    """
    key = (type(provider), protocol)
    known = _IMPLEMENTS.get(key)
    if known is None:
        known = _IMPLEMENTS[key] = isinstance(provider, protocol)
    return known


async def check_can_see(provider: Provider, model: str) -> None:
    """Refuse, before anything is sent, images for a model that cannot read them.

    Raises :class:`~ailab.errors.InvalidInput` naming ``provider/model``; the backend's own errors
    (an unknown model, an unreachable server) come through as they are.
    """
    if implements(provider, SupportsVision) and await provider.can_see(model):
        return
    raise InvalidInput(
        f"model '{provider.name}/{model}' cannot read images; choose a model that can see, "
        "or send the message without its images"
    )


async def check_can_use_tools(provider: Provider, model: str) -> None:
    """Refuse, before anything is sent, tools for a model that cannot call them.

    Raises :class:`~ailab.errors.InvalidInput` naming ``provider/model``.
    """
    if implements(provider, SupportsTools) and await provider.can_use_tools(model):
        return
    raise InvalidInput(
        f"model '{provider.name}/{model}' cannot call tools; choose a model that can, "
        "or send the request without tools and tool messages"
    )


async def check_request(provider: Provider, request: ChatRequest) -> None:
    """Everything a provider can refuse in ``request`` before anything is sent: images for a model that
    cannot see, tools for one that cannot call them, and what its wire cannot carry
    (:class:`SupportsRequestCheck`). Raises :class:`~ailab.errors.InvalidInput` naming the model."""
    if has_images(request):
        await check_can_see(provider, request.model)
    if uses_tools(request):
        await check_can_use_tools(provider, request.model)
    if implements(provider, SupportsRequestCheck):
        provider.check_request(request)


class WholeBody:
    """A pass-through body read whole already, as the async iterator of bytes a body is (one chunk)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> WholeBody:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data

    async def read(self) -> bytes:
        """The body (``read_whole``); b"" once it was read."""
        data, self._data = self._data, None
        return data or b""

    async def aclose(self) -> None:
        """Forget the body."""
        self._data = None


async def read_whole(body: AsyncIterator[bytes]) -> bytes:
    """All of an upstream body: at once where it can be read so (:class:`WholeBody`,
    ``transport.ResponseBody``), else chunk by chunk."""
    read = getattr(body, "read", None)
    if read is not None:
        data: bytes = await read()
        return data
    parts = [chunk async for chunk in body]
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def close_stream(stream: object) -> None:
    """Close an async iterator that can be closed (async generators can): for a provider's stream, or a
    pipeline's events, that is what stops the generation behind it."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def sampling_fields(
    request: ChatRequest,
    *,
    max_tokens: str | None = "max_tokens",
    temperature: str = "temperature",
    top_p: str = "top_p",
    stop: str = "stop",
) -> dict[str, Any]:
    """The request's sampling settings that are set, under a backend's own field names.

    ``max_tokens=None`` leaves the token limit out, for backends that always need one of their own.
    """
    fields: dict[str, Any] = {}
    if max_tokens is not None and request.max_tokens is not None:
        fields[max_tokens] = request.max_tokens
    if request.temperature is not None:
        fields[temperature] = request.temperature
    if request.top_p is not None:
        fields[top_p] = request.top_p
    if request.stop:
        fields[stop] = list(request.stop)
    return fields


EXTRA_SAMPLING = ("seed", "presence_penalty", "frequency_penalty")


def extra_sampling(request: ChatRequest, **names: str) -> dict[str, int | float]:
    """The ``seed`` and penalties ``request.extra`` carries (OpenAI's names, as the gateway passes them
    on), under a backend's own ``names`` (``presence_penalty="presencePenalty"``); numbers only."""
    fields: dict[str, int | float] = {}
    for name in EXTRA_SAMPLING:
        value = request.extra.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            fields[names.get(name, name)] = value
    return fields
