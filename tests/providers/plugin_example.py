"""A provider plugin as a third-party package would write one (loaded through a test entry point)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ailab.config import Settings
from ailab.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    CredentialStore,
    ModelInfo,
    ProviderHealth,
    Usage,
)


class EchoProvider:
    """Answers with the last user message, reversed."""

    name = "fake"

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="echo-1", owned_by="plugin")]

    async def chat(self, request: ChatRequest) -> ChatResult:
        text = request.messages[-1].content[::-1]
        return ChatResult(content=text, model=request.model, usage=Usage(1, 1), finish_reason="stop")

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        result = await self.chat(request)
        yield ChatChunk(delta=result.content)
        yield ChatChunk(finish_reason="stop", usage=result.usage)

    async def health(self) -> ProviderHealth:
        return ProviderHealth(ok=True)

    async def aclose(self) -> None:
        return None


def create(settings: Settings, credentials: CredentialStore) -> EchoProvider:
    """The plugin's entry point."""
    return EchoProvider()


def create_broken(settings: Settings, credentials: CredentialStore) -> EchoProvider:
    """A plugin whose factory fails."""
    raise RuntimeError("this plugin is broken")
