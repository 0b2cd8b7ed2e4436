"""The embedded llama.cpp model really generates: whole and streamed, stops when closed, serialises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from ailab.config import Settings
from ailab.errors import ModelBusy, ModelNotFound, ProviderUnavailable
from ailab.providers.base import ChatMessage, ChatRequest
from ailab.providers.local import (
    PLUGIN,
    LocalDefaults,
    LocalProvider,
    default_model_path,
    model_name_from_path,
)
from tests.support.provider_settings import fold, make_provider
from tests.support.server import LOCAL_THREADS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local() -> Iterator[LocalProvider]:
    """One provider (one model load) for the module; each test uses its own requests."""
    settings = Settings(_env_file=None, **fold({"local_threads": LOCAL_THREADS, "local_context": 1024}))  # type: ignore[call-arg]
    provider = make_provider(PLUGIN, settings)
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


# -- prompting, bounds and the queue ----------------------------------------------------------------


def guarded(**defaults: Any) -> LocalProvider:
    """A provider of its own (its own model load), with ``defaults`` instead of the settings'."""
    return LocalProvider(
        default_model_path(), n_threads=LOCAL_THREADS, n_ctx=1024, defaults=LocalDefaults(**defaults)
    )


async def test_a_factual_question_is_answered_rightly_with_the_default_prompting(
    local: LocalProvider,
) -> None:
    result = await local.chat(ask("What is the capital of France?", max_tokens=40))
    assert "paris" in result.content.lower(), result.content
    assert result.finish_reason == "stop"


async def test_the_prompt_is_the_ggufs_own_template_with_the_default_system_prompt(
    local: LocalProvider,
) -> None:
    question = "What is the capital of France?"
    result = await local.chat(ask(question, max_tokens=1))
    llama = local._llama
    assert llama.chat_format == "chat_template.default"
    template = jinja2.Environment(autoescape=False).from_string(llama.metadata["tokenizer.chat_template"])
    system = local.defaults.system_prompt
    assert system  # the settings' default: a short "answer directly" prompt
    expected = template.render(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        add_generation_prompt=True,
    )
    tokens = llama.tokenize(expected.encode(), add_bos=False, special=True)
    assert result.usage is not None and result.usage.prompt_tokens == len(tokens)
    # A conversation with its own system message keeps it (and gets no second one).
    own = await local.chat(
        ChatRequest(
            model="",
            messages=[ChatMessage("system", "Be brief."), ChatMessage("user", question)],
            max_tokens=1,
        )
    )
    own_prompt = template.render(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
        add_generation_prompt=True,
    )
    assert own.usage is not None
    assert own.usage.prompt_tokens == len(llama.tokenize(own_prompt.encode(), add_bos=False, special=True))


async def test_a_generation_that_loops_is_cut() -> None:
    # The GGUF template's own system prompt and no repetition penalty: at temperature 0 SmolLM2 answers
    # this with a phrase repeated until stopped ("L'Étoile, ..., la femme au martyre, la femme au martyre,
    # la femme au martyre, ..."; the exact words vary with llama.cpp's build).
    provider = guarded(system_prompt="", repeat_penalty=1.0)
    try:
        result = await provider.chat(ask("What is the capital of France?", max_tokens=600))
    finally:
        await provider.aclose()
    assert provider.last_cut == "repetition"
    assert result.finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens < 150
    words = result.content.split()
    phrases = [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
    assert max(phrases.count(p) for p in phrases) >= 3  # cut once the loop showed, not before


async def test_a_generation_ends_at_the_time_limit_and_the_default_token_limit() -> None:
    provider = guarded(timeout_s=0.5, max_tokens=5000)
    try:
        started = time.monotonic()
        result = await provider.chat(ask("Write a very long story about a dragon, in ten chapters.", 3000))
        elapsed = time.monotonic() - started
        assert provider.last_cut == "time"
        assert result.finish_reason == "length"
        assert elapsed < 5  # the model load, then half a second of generation
        provider.defaults = LocalDefaults(max_tokens=5)
        capped = await provider.chat(
            ChatRequest(model="", messages=[ChatMessage("user", "Write a long story.")], temperature=0.0)
        )
        assert capped.usage is not None and capped.usage.completion_tokens == 5
        assert capped.finish_reason == "length"
    finally:
        await provider.aclose()


async def test_a_request_that_finds_the_queue_full_is_refused_with_a_retry_after() -> None:
    provider = guarded(queue_size=1)
    try:
        running = provider.stream(ask("Write a long story about a dragon.", max_tokens=300))
        first = await anext(running)  # the model is busy with this one now
        assert first.delta
        waiting = asyncio.create_task(provider.chat(ask("Hi", max_tokens=2)))
        await asyncio.sleep(0)  # one turn of the loop: it is in the queue
        assert provider.queue.waiting == 1
        with pytest.raises(ModelBusy, match="1 requests are already waiting") as refused:
            await provider.chat(ask("Hi"))
        assert refused.value.status == 503 and refused.value.retry_after >= 1
        await running.aclose()  # type: ignore[attr-defined]
        answer = await waiting  # the turn passed on once the first generation stopped
        assert answer.usage is not None and answer.usage.completion_tokens <= 2
    finally:
        await provider.aclose()


async def test_closing_the_provider_stops_a_running_generation() -> None:
    provider = guarded()
    running = provider.stream(ask("Write a long story about a dragon.", max_tokens=800))
    assert (await anext(running)).delta
    started = time.monotonic()
    await provider.aclose()
    assert time.monotonic() - started < 2
    assert provider.last_cut == "cancelled"
    with pytest.raises(ProviderUnavailable, match="shutting down"):
        await provider.chat(ask("Hi"))
    await running.aclose()  # type: ignore[attr-defined]


async def test_every_gguf_in_the_data_dirs_models_folder_is_served(tmp_path: Path) -> None:
    default = default_model_path()
    assert default is not None
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    (models / "Tiny-Twin.Q4_1.gguf").symlink_to(default)  # another GGUF (here: the same weights)
    values = fold({"data_dir": tmp_path / "data", "local_threads": LOCAL_THREADS, "local_context": 512})
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    provider = make_provider(PLUGIN, settings)
    try:
        listed = await provider.list_models()
        assert [m.id for m in listed] == ["smollm2-135m-instruct", "tiny-twin"]
        assert all(m.size_bytes == default.stat().st_size for m in listed)
        twin = await provider.chat(
            ChatRequest(model="tiny-twin", messages=[ChatMessage("user", "Hi")], max_tokens=2)
        )
        assert twin.model == "tiny-twin" and provider.loaded_model == "tiny-twin"
        first = await provider.chat(ask("Hi", max_tokens=2))
        assert first.model == "smollm2-135m-instruct" and provider.loaded_model == "smollm2-135m-instruct"
        with pytest.raises(ModelNotFound, match="local/smollm2-135m-instruct, local/tiny-twin"):
            await provider.chat(ChatRequest(model="nope", messages=[ChatMessage("user", "Hi")]))
    finally:
        await provider.aclose()
