"""Tiny in-process providers for tests that need a Provider but no generation (token counting)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ailab.providers.base import ChatChunk, ChatRequest, ChatResult, ModelInfo, ProviderHealth


class NoTokenizerProvider:
    """A provider without a tokenizer: the chat service approximates from characters."""

    name = "words"

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="words", context_window=1024)]

    async def chat(self, request: ChatRequest) -> ChatResult:
        text = " ".join(m.content for m in request.messages)
        return ChatResult(content=text, model="words")

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        for message in request.messages:
            yield ChatChunk(delta=message.content)

    async def health(self) -> ProviderHealth:
        return ProviderHealth(True)

    async def aclose(self) -> None:
        return None


class WordProvider(NoTokenizerProvider):
    """Counts one token per word."""

    async def count_tokens(self, texts: list[str], model: str = "") -> list[int]:
        return [len(t.split()) for t in texts]
