"""Trimming a session's history to a model's context window."""

from __future__ import annotations

import pytest

from ailab.errors import InvalidInput
from ailab.providers.base import ChatMessage
from ailab.services.chat.service import MESSAGE_OVERHEAD_TOKENS, TEMPLATE_RESERVE_TOKENS, fit_history
from tests.support.word_provider import NoTokenizerProvider, WordProvider


async def test_keeps_the_newest_messages_that_fit() -> None:
    provider = WordProvider()  # counts one token per word
    history = [ChatMessage("user" if i % 2 == 0 else "assistant", " ".join(["w"] * 10)) for i in range(10)]
    per_message = 10 + MESSAGE_OVERHEAD_TOKENS
    window = TEMPLATE_RESERVE_TOKENS + 50 + (1 + MESSAGE_OVERHEAD_TOKENS) + 3 * per_message
    kept = await fit_history(provider, history, "question", context_window=window, max_tokens=50)
    assert kept == history[-3:]
    assert await fit_history(provider, history, "question", context_window=10_000, max_tokens=50) == history


async def test_a_message_that_cannot_fit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="context window"):
        await fit_history(WordProvider(), [], "word " * 500, context_window=256, max_tokens=10)


async def test_without_a_tokenizer_characters_are_approximated() -> None:
    history = [ChatMessage("user", "x" * 400)] * 5  # ~100 tokens each
    kept = await fit_history(NoTokenizerProvider(), history, "q", context_window=600, max_tokens=100)
    assert 1 <= len(kept) < 5
