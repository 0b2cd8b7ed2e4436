"""A provider plugin as a third-party package would write one (loaded through a test entry point)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic_settings import SettingsConfigDict

from ailab.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    CredentialStore,
    ModelInfo,
    ProviderHealth,
    Usage,
)
from ailab.providers.plugin import ProviderContext, ProviderPlugin, ProviderSettings


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


class EchoSettings(ProviderSettings):
    """``AILAB_FAKE_*``: nothing to set."""

    model_config = SettingsConfigDict(env_prefix="AILAB_FAKE_")


def create(settings: EchoSettings, credentials: CredentialStore, context: ProviderContext) -> EchoProvider:
    """The plugin's factory."""
    return EchoProvider()


def create_broken(
    settings: EchoSettings, credentials: CredentialStore, context: ProviderContext
) -> EchoProvider:
    """A plugin whose factory fails."""
    raise RuntimeError("this plugin is broken")


PLUGIN = ProviderPlugin(name="fake", settings=EchoSettings, factory=create, description="reverses the text")
BROKEN = ProviderPlugin(name="broken", settings=EchoSettings, factory=create_broken)
NOT_A_PLUGIN = create
