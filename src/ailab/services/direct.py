"""The ``direct`` pipeline (one model answers the turn) and the timed generation every pipeline uses.

:class:`Generation` wraps one provider stream: it measures the time to the first token and the decoding
rate, takes the usage the provider reports (or counts chunks when it reports none), and tells the
registry's observers about the generation once it ends, whether it finished, failed or was cut off.
Closing it closes the provider's stream, which stops the generation.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from ailab.errors import AILabError
from ailab.providers.base import ChatMessage, ChatRequest, Provider, Usage
from ailab.providers.registry import GenerationRecord, ProviderRegistry
from ailab.services.turns import Delta, Final, PipelineEvent, Turn


async def model_id_of(provider: Provider, model: str) -> str:
    """The public ``provider/model`` id, naming the provider's default model when ``model`` is empty."""
    if not model:
        models = await provider.list_models()
        model = models[0].id if models else "default"
    return f"{provider.name}/{model}"


class Generation:
    """One timed, recorded generation; iterate :meth:`text` for the pieces of the answer."""

    def __init__(self, registry: ProviderRegistry, provider: Provider, request: ChatRequest) -> None:
        self._registry = registry
        self.provider = provider
        self.request = request
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.ttft_s: float | None = None
        self.duration_s: float = 0.0
        self._chunks = 0

    @property
    def content(self) -> str:
        """The text produced so far."""
        return "".join(self.parts)

    @property
    def tokens_per_second(self) -> float | None:
        """Decoding rate: completion tokens over the time after the first token."""
        if self.usage is None or self.ttft_s is None or self.usage.completion_tokens < 2:
            return None
        decoding = self.duration_s - self.ttft_s
        return round(self.usage.completion_tokens / decoding, 2) if decoding > 0 else None

    async def text(self) -> AsyncGenerator[str, None]:
        """The answer piece by piece; closing this iterator stops the provider's generation."""
        start = time.perf_counter()
        ok, error_kind = False, "cancelled"
        try:
            chunks = self.provider.stream(self.request)
            try:
                async for chunk in chunks:
                    if chunk.usage is not None:
                        self.usage = chunk.usage
                    if chunk.finish_reason is not None:
                        self.finish_reason = chunk.finish_reason
                    if chunk.delta:
                        if self.ttft_s is None:
                            self.ttft_s = time.perf_counter() - start
                        self._chunks += 1
                        self.parts.append(chunk.delta)
                        yield chunk.delta
            finally:
                aclose = getattr(chunks, "aclose", None)  # stops the provider's generation
                if aclose is not None:
                    await aclose()
            ok, error_kind = True, ""
        except AILabError as exc:
            error_kind = exc.code
            raise
        except Exception as exc:
            error_kind = type(exc).__name__
            raise
        finally:
            self.duration_s = time.perf_counter() - start
            if self.usage is None:  # the backend did not say: one chunk is about one token
                self.usage = Usage(completion_tokens=self._chunks)
            self._registry.record(
                GenerationRecord(
                    provider=self.provider.name,
                    model=self.request.model,
                    ok=ok,
                    duration_s=self.duration_s,
                    ttft_s=self.ttft_s,
                    prompt_tokens=self.usage.prompt_tokens,
                    completion_tokens=self.usage.completion_tokens,
                    error_kind=error_kind or None,
                    stream=True,
                )
            )


class DirectPipeline:
    """The ``direct`` pipeline: the turn's model (or the default one) answers with the history as context."""

    name = "direct"

    def __init__(self, providers: ProviderRegistry) -> None:
        self._providers = providers

    async def run(self, turn: Turn) -> AsyncIterator[PipelineEvent]:
        """Stream the model's answer as Delta events, then one Final."""
        provider, model = self._providers.resolve(turn.model)
        request = ChatRequest(
            model=model,
            messages=[*turn.history, ChatMessage("user", turn.message)],
            max_tokens=turn.max_tokens,
            temperature=turn.temperature,
            requester=turn.owner_id,
        )
        generation = Generation(self._providers, provider, request)
        async with aclosing(generation.text()) as pieces:
            async for piece in pieces:
                yield Delta(piece)
        yield Final(
            response=generation.content,
            model=await model_id_of(provider, model),
            usage=generation.usage or Usage(),
            ttft_ms=round(generation.ttft_s * 1000, 2) if generation.ttft_s is not None else None,
            tokens_per_second=generation.tokens_per_second,
        )
