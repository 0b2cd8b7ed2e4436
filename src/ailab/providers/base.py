"""The provider protocol: what every model backend implements.

A provider is created once per process by its factory (the object its entry point names) and shared by
all requests. It turns a :class:`ChatRequest` into its backend's wire format, sends it over one pooled
client session, and turns the answer back into :class:`ChatResult` or a stream of :class:`ChatChunk`.
The translation to and from the wire format is kept in pure functions per module so it can be tested
without HTTP. Errors are raised as the ``ProviderError`` subclasses of :mod:`ailab.errors`.

Credentials are looked up per request through a :class:`CredentialStore` (the vault, then settings), so
a key set or rotated at run time is used at once without a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ailab.errors import InvalidInput
from ailab.providers.credentials import Credential

__all__ = [  # Credential is re-exported: it is part of the protocol
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
    "SupportsVision",
    "UpstreamResponse",
    "Usage",
    "check_can_see",
    "has_images",
    "sampling_fields",
]


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image a message shows the model: its bytes and media type (``image/png``, ``image/jpeg``,
    ``image/webp`` or ``image/gif``), already checked and downscaled. Each backend sends it its own way."""

    media_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation, in the roles every backend knows: system, user, assistant.

    ``images`` go with the text to a model that can see (a user message's attachments)."""

    role: str
    content: str
    images: tuple[ImagePart, ...] = ()


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


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat completion request, backend-neutral. ``model`` is the provider's own name (no prefix)."""

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


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A whole answer."""

    content: str
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """A piece of a streamed answer. The last chunk carries ``finish_reason`` and, if known, ``usage``."""

    delta: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


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


@dataclass(frozen=True, slots=True)
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


def has_images(request: ChatRequest) -> bool:
    """Whether any message of ``request`` shows an image."""
    return any(message.images for message in request.messages)


async def check_can_see(provider: Provider, model: str) -> None:
    """Refuse, before anything is sent, images for a model that cannot read them.

    Raises :class:`~ailab.errors.InvalidInput` naming ``provider/model``; the backend's own errors
    (an unknown model, an unreachable server) come through as they are.
    """
    if isinstance(provider, SupportsVision) and await provider.can_see(model):
        return
    raise InvalidInput(
        f"model '{provider.name}/{model}' cannot read images; choose a model that can see, "
        "or send the message without its images"
    )


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
