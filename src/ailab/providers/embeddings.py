"""Embeddings of the remote backends: batching, the call, and the checks every wire format shares.

A backend with embeddings extends :class:`EmbeddingProvider` and hands over its pure translations: where a
batch goes (``embeddings_endpoint``), its JSON body (``embeddings_body``) and how to read the answer
(``parse_embeddings``), with how many inputs one request may carry (``embed_batch_size``; and
``embed_batch_chars`` where the upstream limits a request's tokens). :meth:`EmbeddingProvider.embed`
cuts the inputs into batches, in order, and sends them one after the other: a large file's chunks must
not hit the upstream's rate limit all at once, and the answer must keep the inputs' order. Each answer
must hold one vector per input; the usage of the batches is summed. Credentials, the key's header and
the error mapping (the key scrubbed from every message) are chat's (:class:`TranslatingProvider`).

Where the backend does not say what it counted (Gemini, Hugging Face's feature extraction), the usage
is None: nothing is made up.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from ailab.errors import ProviderUnavailable
from ailab.providers.base import Credential, Embeddings, Usage
from ailab.providers.remote import Endpoint, TranslatingProvider


def batches(inputs: Sequence[str], max_items: int, max_chars: int | None = None) -> Iterator[list[str]]:
    """``inputs`` in consecutive batches of at most ``max_items`` (and ``max_chars`` characters, except
    a single longer input, which goes alone: the upstream judges it)."""
    batch: list[str] = []
    chars = 0
    for text in inputs:
        full = len(batch) >= max_items or (max_chars is not None and chars + len(text) > max_chars)
        if batch and full:
            yield batch
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        yield batch


def vector(provider: str, value: Any) -> list[float]:
    """One embedding from an answer: a non-empty list of numbers, or little-endian float32 in base64."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raw = b""
        if raw and len(raw) % 4 == 0:
            return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    elif isinstance(value, list) and value:
        try:
            return [float(number) for number in value]
        except (TypeError, ValueError):
            pass
    raise ProviderUnavailable(f"{provider} answered an embedding that is not a list of numbers")


def vectors(provider: str, values: Any) -> list[list[float]]:
    """The embeddings of an answer, each checked (:func:`vector`)."""
    if not isinstance(values, list):
        raise ProviderUnavailable(f"{provider} answered with an unexpected embeddings shape")
    return [vector(provider, value) for value in values]


class EmbeddingProvider(TranslatingProvider):
    """A remote chat backend that also embeds (see the module docstring)."""

    embed_batch_size: int = 96
    embed_batch_chars: int | None = None

    def embeddings_endpoint(self, credential: Credential, model: str) -> Endpoint:
        """The URL (and query) of an embeddings request."""
        raise NotImplementedError

    def embeddings_body(self, model: str, inputs: list[str], dimensions: int | None) -> dict[str, Any]:
        """The JSON body of one batch."""
        raise NotImplementedError

    def parse_embeddings(self, data: Any, model: str) -> Embeddings:
        """The vectors (in input order) and usage of one batch's answer."""
        raise NotImplementedError

    async def embed(self, model: str, inputs: list[str], *, dimensions: int | None = None) -> Embeddings:
        """One vector per input, in order; ``dimensions`` asks for shorter vectors where the model can."""
        if not inputs:
            return Embeddings(vectors=[], model=model)
        credential = await self.require_credential()
        found: list[list[float]] = []
        usage: Usage | None = None
        answered = model
        for batch in batches(inputs, self.embed_batch_size, self.embed_batch_chars):
            result = await self.embed_batch(credential, model, batch, dimensions)
            if len(result.vectors) != len(batch):
                raise ProviderUnavailable(
                    f"{self.name} answered {len(result.vectors)} embeddings for {len(batch)} inputs"
                )
            found += result.vectors
            answered = result.model or answered
            if result.usage is not None:
                before = usage.prompt_tokens if usage is not None else 0
                usage = Usage(prompt_tokens=before + result.usage.prompt_tokens)
        return Embeddings(vectors=found, model=answered, usage=usage)

    async def embed_batch(
        self, credential: Credential, model: str, inputs: list[str], dimensions: int | None
    ) -> Embeddings:
        """Send one batch and read its answer."""
        endpoint = self.embeddings_endpoint(credential, model)
        data = await self.http.json(
            "POST",
            endpoint.url,
            headers=self.headers(credential),
            params=endpoint.params,
            body=self.embeddings_body(model, inputs, dimensions),
            secret=credential.api_key,
        )
        return self.parse_embeddings(data, model)
