"""One generation's clock, and the one record monitoring gets of it.

Every path that runs a model (the ``direct`` pipeline, the agent engine, the benchmark, the gateway)
times it with a :class:`GenerationTimer`, so their figures are measured alike and a failure carries the
same label on every path: the error's code (``upstream_timeout``, ``invalid_api_key``, ...),
``cancelled`` when the caller went away, or the exception's type for a bug.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ailab.errors import AILabError
from ailab.providers.base import ChatChunk, Usage
from ailab.providers.registry import GenerationRecord, ProviderRegistry

CANCELLED = "cancelled"


def error_label(error: BaseException | str | None) -> str | None:
    """The label a generation that ended with ``error`` is recorded under; None for success."""
    if error is None or isinstance(error, str):
        return error
    if isinstance(error, AILabError):
        return error.code
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return CANCELLED
    return type(error).__name__


class GenerationTimer:
    """Times one generation from its request to its end; :meth:`finish` records it, once.

    Feed it what the provider sends (:meth:`take` for a chunk; :meth:`first` and :meth:`tokens` for
    paths that see raw bytes). The usage a provider reports wins; without one, each text chunk counts as
    one completion token.
    """

    __slots__ = (
        "_clock",
        "_registry",
        "chunks",
        "ended",
        "first_at",
        "model",
        "provider",
        "started",
        "stream",
        "usage",
    )

    def __init__(
        self,
        registry: ProviderRegistry | None,
        provider: str,
        model: str,
        *,
        stream: bool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self.provider = provider
        self.model = model
        self.stream = stream
        self.started = clock()
        self.first_at: float | None = None
        self.ended: float | None = None
        self.chunks = 0
        self.usage: Usage | None = None

    def first(self) -> None:
        """The answer began (the time to first token), without counting a token: raw bytes passed on
        whose tokens the provider's usage will count."""
        if self.first_at is None:
            self.first_at = self._clock()

    def text(self) -> None:
        """A piece of text arrived: the first one sets the time to first token."""
        self.first()
        self.chunks += 1

    def take(self, chunk: ChatChunk) -> str:
        """Account for one provider chunk (text or a tool call's piece); answers its text ('' for none)."""
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.delta or chunk.tool_calls:
            self.text()
        return chunk.delta

    def tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The usage the provider reported, as counts."""
        self.usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    @property
    def ttft_s(self) -> float | None:
        """Seconds from the request to the first piece of text."""
        return None if self.first_at is None else self.first_at - self.started

    @property
    def duration_s(self) -> float:
        """Seconds from the request to its end (to now while it runs)."""
        return (self.ended if self.ended is not None else self._clock()) - self.started

    @property
    def final_usage(self) -> Usage:
        """The reported usage, or the chunk count as completion tokens when none was reported."""
        return self.usage if self.usage is not None else Usage(completion_tokens=self.chunks)

    @property
    def tokens_per_second(self) -> float | None:
        """Decoding rate: completion tokens over the time after the first token."""
        tokens = self.final_usage.completion_tokens
        if self.first_at is None or tokens < 2:
            return None
        decoding = self.duration_s - (self.first_at - self.started)
        return round(tokens / decoding, 2) if decoding > 0 else None

    def finish(self, error: BaseException | str | None = None) -> None:
        """End the clock and record the generation, ok when ``error`` is None; later calls do nothing."""
        if self.ended is not None:
            return
        self.ended = self._clock()
        if self._registry is None:
            return
        usage = self.final_usage
        label = error_label(error)
        self._registry.record(
            GenerationRecord(
                provider=self.provider,
                model=self.model,
                ok=label is None,
                duration_s=self.ended - self.started,
                ttft_s=self.ttft_s,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                error_kind=label,
                stream=self.stream,
            )
        )
