"""The ``direct`` pipeline (one model answers the turn) and the timed generation every pipeline uses.

:class:`Generation` wraps one provider stream in a :class:`~ailab.providers.timing.GenerationTimer`
(time to first token, decoding rate, usage, one record for monitoring, whether it finished, failed or
was cut off). Closing it closes the provider's stream, which stops the generation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from ailab.providers.base import ChatRequest, Provider, Usage, close_stream
from ailab.providers.registry import ProviderRegistry
from ailab.providers.timing import GenerationTimer
from ailab.services.chat.turns import Delta, Final, PipelineEvent, Turn


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
        self.finish_reason: str | None = None
        self.timer: GenerationTimer | None = None

    @property
    def content(self) -> str:
        """The text produced so far."""
        return "".join(self.parts)

    @property
    def usage(self) -> Usage | None:
        """The usage reported (or the chunks counted), once the generation started."""
        return self.timer.final_usage if self.timer is not None else None

    @property
    def ttft_s(self) -> float | None:
        return self.timer.ttft_s if self.timer is not None else None

    @property
    def tokens_per_second(self) -> float | None:
        return self.timer.tokens_per_second if self.timer is not None else None

    async def text(self) -> AsyncGenerator[str, None]:
        """The answer piece by piece; closing this iterator stops the provider's generation."""
        timer = self.timer = GenerationTimer(
            self._registry, self.provider.name, self.request.model, stream=True
        )
        error: BaseException | None = None
        try:
            chunks = self.provider.stream(self.request)
            try:
                async for chunk in chunks:
                    if chunk.finish_reason is not None:
                        self.finish_reason = chunk.finish_reason
                    if timer.take(chunk):
                        self.parts.append(chunk.delta)
                        yield chunk.delta
            finally:
                await close_stream(chunks)  # stops the provider's generation
        except BaseException as exc:
            error = exc
            raise
        finally:
            timer.finish(error)


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
            messages=[*turn.history, turn.user_message()],
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
