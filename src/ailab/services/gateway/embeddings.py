"""``POST /v1/embeddings``: OpenAI's embeddings API over every provider that has embeddings.

Two paths, as for chat completions, chosen per provider once:

- **pass-through** where the backend speaks OpenAI's embeddings wire
  (:class:`~ailab.providers.base.SupportsEmbeddingsForward`: OpenAI, Azure, OpenAI-compatible servers, a
  Hugging Face server of your own): the request goes on with only ``model`` rewritten, so token arrays,
  ``dimensions`` and base64 answers are the upstream's work. Its answer is read once, to check it is JSON
  and to count its usage, and goes back as it came but for ``model``, which names the model as requested;
- **translation** for the others (Gemini, Cohere, Ollama, Hugging Face's router): the texts go to the
  provider's :meth:`~ailab.providers.base.SupportsEmbeddings.embed` (which batches them as its backend
  needs) and the vectors come back in OpenAI's shape, as floats or, with ``encoding_format: base64``, as
  the base64 of their little-endian float32 bytes (what OpenAI sends, and what the official SDK asks for
  unless told otherwise). Token arrays are refused there: only an OpenAI-wire upstream has the tokenizer
  they were made with.

A model alias (``services/routing``) is routed as for chat: each attempt is one of the two paths on one
of its deployments (then fallbacks), read whole, and a deployment failure (429, 5xx, a timeout, a reset,
an answer that is not JSON) goes on to the next one, with the alias's retries, backoff and cool-downs
(:meth:`~ailab.services.routing.router.AliasProvider.call`). The answer's ``model`` names the alias.

A model of a provider without embeddings (Anthropic, the embedded model), an alias with such a deployment
or fallback, or a pipeline is answered 400, naming it and the providers that have embeddings. Usage is
counted as for chat: one :class:`~ailab.providers.timing.GenerationTimer` record per request (an alias's
under ``alias/<name>``), with the input tokens as prompt tokens (monitoring turns it into the per-model
requests and token counters and history).
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Annotated, Any, Literal, cast

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from ailab.errors import AILabError, InvalidInput, ProviderUnavailable
from ailab.providers.base import (
    Provider,
    SupportsEmbeddings,
    SupportsEmbeddingsForward,
    implements,
    read_whole,
    token_count,
)
from ailab.providers.registry import ProviderRegistry
from ailab.providers.timing import GenerationTimer
from ailab.services.gateway.pipelines import pipeline_name
from ailab.services.gateway.request import BadRequest, json_object, validate_body
from ailab.services.routing.router import AliasProvider

MAX_INPUTS = 2048  # OpenAI's limit per request
MAX_DIMENSIONS = 8192  # more than any embedding model makes
MAX_TOKEN_ID = 2**31 - 1  # no tokenizer has more; bounded so an id fits every integer type
_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')

Text = Annotated[str, Field(min_length=1)]
Tokens = Annotated[list[Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]], Field(min_length=1)]


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request: ``model`` is ``provider/model`` or a model alias; ``input`` one text or
    up to 2048, or token arrays for a backend that speaks OpenAI's wire."""

    model_config = ConfigDict(extra="allow")  # other parameters reach an OpenAI-wire upstream as they are

    model: Annotated[str, Field(min_length=1, max_length=255, examples=["openai/text-embedding-3-small"])]
    input: (
        Text
        | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)]
        | Tokens
        | Annotated[list[Tokens], Field(min_length=1, max_length=MAX_INPUTS)]
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1, le=MAX_DIMENSIONS)] | None = None
    user: str | None = None

    @field_validator("input", mode="wrap")
    @classmethod
    def _one_message(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A union's errors name each member it tried; one sentence says what is accepted instead.
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(
                f"must be a non-empty string, or an array of 1 to {MAX_INPUTS} non-empty strings, "
                "or token arrays (arrays of integers)"
            ) from None


def parse_embeddings_request(body: bytes) -> dict[str, Any]:
    """The JSON object of an embeddings request, checked against :class:`EmbeddingsRequest`."""
    payload = json_object(body)
    validate_body(EmbeddingsRequest.model_validate, payload)  # the declared shape; the payload goes on
    return payload


def texts_of(value: Any) -> list[str]:
    """The texts of a (validated) ``input``; BadRequest for token arrays."""
    if isinstance(value, str):
        return [value]
    if all(isinstance(item, str) for item in value):
        return cast(list[str], value)
    raise BadRequest(
        "'input': token arrays reach only providers that speak OpenAI's wire (openai, azure, "
        "openai-compat, a Hugging Face server of your own); send the texts instead"
    )


def float32_base64(vector: list[float]) -> str:
    """A vector as OpenAI's base64 encoding: its little-endian float32 bytes."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def embedding_list(model_id: str, vectors: list[list[float]], encoding: str, prompt_tokens: int) -> bytes:
    """OpenAI's embeddings answer (``object: list``) for ``vectors``, in order."""
    data = [
        {"object": "embedding", "index": index, "embedding": float32_base64(v) if encoding == "base64" else v}
        for index, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model_id, "usage": usage})


def with_model(body: bytes, model_id: str) -> bytes:
    """``body`` (an upstream's embeddings answer) with its ``model`` naming ``model_id``.

    Rewritten in the bytes, not re-encoded: the rest of an answer (thousands of numbers) goes as it came.
    The only JSON string keyed ``"model"`` in such an answer is its own (vectors are numbers or base64).
    """
    value = orjson.dumps(model_id)
    return _MODEL_FIELD.sub(lambda _match: b'"model":' + value, body, count=1)


def prompt_tokens_of(answer: Any) -> int:
    """The input tokens an OpenAI embeddings answer counts (0 when it says none)."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return token_count(tokens)


class GatewayEmbeddings:
    """Serves OpenAI's embeddings API from the provider registry (see the module docstring)."""

    def __init__(self, providers: ProviderRegistry) -> None:
        self._providers = providers

    async def create(self, body: bytes) -> bytes:
        """Answer one embeddings request with OpenAI's JSON.

        What cannot be embedded is refused before anything runs, so only requests that reached a backend
        are recorded (as for chat).
        """
        payload = parse_embeddings_request(body)
        model_id: str = payload["model"]
        if pipeline_name(model_id) is not None:
            raise BadRequest(f"'{model_id}' is a pipeline: pipelines answer chat completions, not embeddings")
        provider, model = self._providers.resolve(model_id)
        alias = provider if isinstance(provider, AliasProvider) else None
        if alias is not None:
            self._check_alias(alias, model_id, payload)
        elif not self._forwards(provider):
            self._embedder(provider, model_id)
            texts_of(payload["input"])
        timer = GenerationTimer(self._providers, provider.name, model, stream=False)
        try:
            if alias is not None:
                answer = await alias.call(
                    lambda target, target_model: self._answer(target, target_model, model_id, payload, timer)
                )
            else:
                answer = await self._answer(provider, model, model_id, payload, timer)
        except (AILabError, asyncio.CancelledError) as exc:  # cancelled: the client hung up
            timer.finish(exc)
            raise
        timer.finish()
        return answer

    async def _answer(
        self, provider: Provider, model: str, model_id: str, payload: dict[str, Any], timer: GenerationTimer
    ) -> bytes:
        """``provider``'s answer, whole: forwarded where it speaks OpenAI's wire, else translated."""
        answer = None
        if self._forwards(provider):
            answer = await self._forward(provider, model, model_id, payload, timer)
        if answer is None:
            answer = await self._translate(provider, model, model_id, payload, timer)
        return answer

    @staticmethod
    def _forwards(provider: Provider) -> bool:
        """Whether ``provider`` may speak OpenAI's embeddings wire (known per class)."""
        return implements(provider, SupportsEmbeddingsForward)

    def _check_alias(self, alias: AliasProvider, model_id: str, payload: dict[str, Any]) -> None:
        """What any deployment or fallback of ``alias`` could not embed is refused before anything runs:
        a request may land on each of them."""
        translated = [t for t in alias.targets if not self._forwards(t.provider)]
        lacking = [t for t in translated if not isinstance(t.provider, SupportsEmbeddings)]
        if lacking:
            names = ", ".join(f"{t.key} ({t.provider.name} has no embeddings API)" for t in lacking)
            raise BadRequest(
                f"'{model_id}' is a model alias whose deployments or fallbacks include models without "
                f"embeddings: {names}; an alias serves embeddings when each of its models is of a "
                f"provider that has ({self._offering()})"
            )
        if translated:
            texts_of(payload["input"])

    def _embedder(self, provider: Provider, model_id: str) -> SupportsEmbeddings:
        """``provider`` if it has embeddings; else the 400 naming it and the providers that have."""
        if isinstance(provider, SupportsEmbeddings):
            return provider
        raise BadRequest(
            f"'{model_id}': {provider.name} has no embeddings API; use a model of a provider that has "
            f"({self._offering()})"
        )

    def _offering(self) -> str:
        """The providers that have embeddings, for a 400's message."""
        providers = self._providers.providers
        offering = [name for name, p in providers.items() if isinstance(p, SupportsEmbeddings)]
        return ", ".join(sorted(offering)) or "none is configured"

    @staticmethod
    async def _forward(
        provider: Provider, model: str, model_id: str, payload: dict[str, Any], timer: GenerationTimer
    ) -> bytes | None:
        forwarder = cast(SupportsEmbeddingsForward, provider)  # checked once per provider, not per request
        upstream = await forwarder.forward_embeddings({**payload, "model": model})
        if upstream is None:
            return None
        data = await read_whole(upstream.body)
        try:  # a 200 that is no JSON (a proxy's HTML page) must not reach the client as an answer
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{provider.name} answered with an invalid body (not JSON)") from None
        timer.tokens(prompt_tokens_of(answer), 0)
        return with_model(data, model_id)

    async def _translate(
        self, provider: Provider, model: str, model_id: str, payload: dict[str, Any], timer: GenerationTimer
    ) -> bytes:
        embedder = self._embedder(provider, model_id)
        texts = texts_of(payload["input"])
        try:
            result = await embedder.embed(model, texts, dimensions=payload.get("dimensions"))
        except InvalidInput as exc:  # what this backend cannot do ('dimensions'): a bad request, as OpenAI's
            raise BadRequest(exc.message) from None
        prompt_tokens = result.usage.prompt_tokens if result.usage is not None else 0
        timer.tokens(prompt_tokens, 0)
        encoding = str(payload.get("encoding_format") or "float")
        return embedding_list(model_id, result.vectors, encoding, prompt_tokens)
