"""The embedded llama.cpp model really generates: whole and streamed, stops when closed, serialises."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ailab.config import Settings
from ailab.errors import ModelNotFound, ProviderUnavailable
from ailab.providers.base import ChatMessage, ChatRequest
from ailab.providers.local import LocalProvider, create, default_model_path, model_name_from_path
from ailab.providers.registry import SettingsCredentials

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local() -> Iterator[LocalProvider]:
    """One provider (one model load) for the module; each test uses its own requests."""
    settings = Settings(_env_file=None, local_threads=2, local_context=1024)  # type: ignore[call-arg]
    provider = create(settings, SettingsCredentials(settings))
    yield provider
    provider._executor.shutdown(wait=True)


def ask(text: str, max_tokens: int = 8) -> ChatRequest:
    return ChatRequest(model="", messages=[ChatMessage("user", text)], max_tokens=max_tokens, temperature=0.0)


def test_model_file_and_name() -> None:
    path = default_model_path()
    assert path is not None and path.is_file()
    assert model_name_from_path(path) == "smollm2-135m-instruct"
    assert model_name_from_path(Path("Llama-3.2-1B-Instruct-Q4_K_M.gguf")) == "llama-3.2-1b-instruct"


async def test_whole_answer(local: LocalProvider) -> None:
    result = await local.chat(ask("What is the capital of France?", max_tokens=12))
    assert result.content.strip()
    assert result.model == "smollm2-135m-instruct"
    assert result.usage is not None and result.usage.prompt_tokens > 5
    assert 1 <= result.usage.completion_tokens <= 12
    assert result.finish_reason in ("stop", "length")
    assert (await local.health()).ok
    assert [m.id for m in await local.list_models()] == ["smollm2-135m-instruct"]


async def test_streamed_answer_matches_the_whole_one(local: LocalProvider) -> None:
    # llama.cpp reuses the KV cache of a repeated prompt prefix and then evaluates only the prompt's last
    # token, whose logits can differ in the last bits from a whole-prompt batch (on some CPUs enough to
    # change a greedy pick). A first call puts both compared calls on the same, cached, path.
    await local.chat(ask("Name three colours.", max_tokens=10))
    whole = await local.chat(ask("Name three colours.", max_tokens=10))
    pieces = [chunk async for chunk in local.stream(ask("Name three colours.", max_tokens=10))]
    assert len([p for p in pieces if p.delta]) >= 2
    assert "".join(p.delta for p in pieces) == whole.content  # temperature 0: same tokens
    assert pieces[-1].usage == whole.usage
    assert pieces[-1].finish_reason == whole.finish_reason


async def test_closing_the_stream_stops_the_generation(local: LocalProvider) -> None:
    before = local.tokens_generated
    stream = local.stream(ask("Write a long story about a dragon.", max_tokens=300))
    received = 0
    async for chunk in stream:
        received += bool(chunk.delta)
        if received == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    # The worker is single-threaded: this runs only once the closed generation has stopped.
    await local.chat(ask("Hi", max_tokens=1))
    stopped_after = local.tokens_generated - before - 1
    assert stopped_after < 10, f"{stopped_after} tokens generated for 3 received"


async def test_two_concurrent_requests_both_succeed(local: LocalProvider) -> None:
    first, second = await asyncio.gather(
        local.chat(ask("Say hello.", max_tokens=6)), local.chat(ask("Say goodbye.", max_tokens=6))
    )
    assert first.content.strip() and second.content.strip()
    assert first.usage is not None and second.usage is not None


async def test_token_count_uses_the_models_tokenizer(local: LocalProvider) -> None:
    short, long = await local.count_tokens(["Paris", "Paris is the capital of France and a large city."])
    assert 1 <= short < long


async def test_unknown_model_and_missing_file(local: LocalProvider, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="local/smollm2-135m-instruct"):
        await local.chat(ChatRequest(model="other", messages=[ChatMessage("user", "hi")]))
    missing = LocalProvider(tmp_path / "nothing.gguf", n_threads=1, n_ctx=512)
    try:
        assert not (await missing.health()).ok
        assert await missing.list_models() == []
        with pytest.raises(ProviderUnavailable, match="AILAB_LOCAL_MODEL_PATH"):
            await missing.chat(ask("hi"))
    finally:
        await missing.aclose()


async def test_usage_counts_the_prompt_and_each_sampled_token(local: LocalProvider) -> None:
    question = "Write a long story about a dragon."
    cut = await local.chat(ask(question, max_tokens=4))
    assert cut.finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 4
    # The prompt is the chat template around the message: more tokens than the message, the same
    # count on a repeat (whose cached prefix is not evaluated again), one message's worth less alone.
    (message_tokens,) = await local.count_tokens([question])
    assert cut.usage.prompt_tokens > message_tokens
    again = await local.chat(ask(question, max_tokens=2))
    assert again.usage is not None and again.usage.prompt_tokens == cut.usage.prompt_tokens
    assert again.usage.completion_tokens == 2
    other = await local.chat(ask("Hi", max_tokens=2))
    (hi_tokens,) = await local.count_tokens(["Hi"])
    assert other.usage is not None
    assert other.usage.prompt_tokens - hi_tokens == cut.usage.prompt_tokens - message_tokens
