"""A scripted model backend: a real implementation of the Provider protocol that answers from a script.

Each streamed generation (an agent writing) takes the next :class:`Reply` of the script (or asks
``reply_for(request)`` when given), streams its text as word pieces, and records the request. Each whole
answer (``chat``: a router's decision) takes the next entry of ``decisions`` (or asks ``decide(request)``):
a bare name such as ``"Worker"`` is answered as the structured ``{"next": "Worker"}``, anything else as
that text (a backend that ignores the schema). ``refuse_schema`` makes it refuse structured requests
like a server that does not support them. A reply can ``hang`` (after its pieces) on an
``asyncio.Event`` that never fires: the time budget or a disconnect must then end it. ``closed`` counts the
streams that were closed (finished, cancelled or closed by the consumer), ``active`` the ones running.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson

from ailab.errors import ProviderError, ProviderUnavailable
from ailab.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    ModelInfo,
    ProviderHealth,
    Usage,
)
from ailab.providers.registry import ProviderRegistry

NAME = "script"


@dataclass
class Reply:
    """What one generation answers."""

    text: str = ""
    hang: bool = False  # after the text, wait forever (until cancelled or closed)
    fail: bool = False  # raise ProviderUnavailable after the text
    usage: Usage | None = None


@dataclass
class ScriptedProvider:
    """The test double: ``script`` is consumed in order; ``requests`` records what was asked."""

    script: list[Reply] = field(default_factory=list)
    reply_for: Callable[[ChatRequest], Reply] | None = None
    decisions: list[str] = field(default_factory=list)
    decide: Callable[[ChatRequest], str] | None = None
    refuse_schema: bool = False
    name: str = NAME
    requests: list[ChatRequest] = field(default_factory=list)
    active: int = 0
    closed: int = 0
    closed_event: asyncio.Event = field(default_factory=asyncio.Event)
    never: asyncio.Event = field(default_factory=asyncio.Event)  # never set
    streaming: asyncio.Event = field(default_factory=asyncio.Event)  # set at the first piece of a hang

    def _next(self, request: ChatRequest) -> Reply:
        self.requests.append(request)
        if self.reply_for is not None:
            return self.reply_for(request)
        if not self.script:
            raise AssertionError(f"the script has no reply left for request {len(self.requests)}")
        return self.script.pop(0)

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="m", context_window=4096)]

    async def chat(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        if request.response_schema is not None and self.refuse_schema:
            raise ProviderError("scripted rejected the request (400): response_format is not supported")
        if self.decide is not None:
            text = self.decide(request)
        elif self.decisions:
            text = self.decisions.pop(0)
        else:
            raise AssertionError(f"no decision left for request {len(self.requests)}")
        content = orjson.dumps({"next": text}).decode() if re.fullmatch(r"[A-Za-z][\w-]*", text) else text
        return ChatResult(content=content, model=request.model, usage=Usage(20, 5))

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        reply = self._next(request)
        self.active += 1
        try:
            for piece in re.findall(r"\S+\s*|\s+", reply.text):
                yield ChatChunk(delta=piece)
            if reply.fail:
                raise ProviderUnavailable("the scripted backend is down")
            if reply.hang:
                self.streaming.set()
                await self.never.wait()
            yield ChatChunk(finish_reason="stop", usage=reply.usage)
        finally:
            self.active -= 1
            self.closed += 1
            self.closed_event.set()

    async def health(self) -> ProviderHealth:
        return ProviderHealth(ok=True)

    async def aclose(self) -> None:
        return None


def registry(provider: ScriptedProvider) -> ProviderRegistry:
    """A registry holding only the scripted backend, which is also the default model."""
    return ProviderRegistry([provider], default_model=f"{NAME}/m")
