"""Behaviours every remote provider shares, each checked against its own fake server."""

from __future__ import annotations

import asyncio
import time

import pytest

from ailab.errors import (
    ModelNotFound,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ailab.providers import base
from ailab.providers.base import ChatChunk, Provider, SupportsOpenAIForward
from tests.fakes.base import DEFAULT_REPLY, FakeServer
from tests.providers.conftest import BACKENDS, KEYED, OPENAI_WIRE, Backend, ProviderFactory, ask, only

REPLY_WORDS = len(DEFAULT_REPLY.split())


async def collect(provider: Provider, backend: Backend) -> list[ChatChunk]:
    return [chunk async for chunk in provider.stream(ask(backend.model))]


async def test_lists_models(fake: FakeServer, backend: Backend, build: ProviderFactory) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    assert isinstance(provider, Provider)
    assert provider.name == backend.name
    models = [m.id for m in await provider.list_models()]
    assert models == list(fake.models)
    health = await provider.health()
    assert health.ok, health.detail


async def test_chat(fake: FakeServer, backend: Backend, build: ProviderFactory) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    result = await provider.chat(ask(backend.model, "one two three"))
    assert result.content == DEFAULT_REPLY
    assert result.usage is not None
    assert result.usage.completion_tokens == REPLY_WORDS
    # The fake counts words of every prompt text: system "You are terse." + "one two three".
    assert result.usage.prompt_tokens == 6
    assert result.finish_reason


async def test_stream_chunks_and_usage(fake: FakeServer, backend: Backend, build: ProviderFactory) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    chunks = await collect(provider, backend)
    texts = [c.delta for c in chunks if c.delta]
    assert len(texts) == REPLY_WORDS  # token by token, not one blob
    assert "".join(texts) == DEFAULT_REPLY
    last = chunks[-1]
    assert last.delta == ""
    assert last.finish_reason
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, REPLY_WORDS)
    assert all(c.usage is None for c in chunks[:-1])


async def test_a_paced_stream_reads_whole(fake: FakeServer, backend: Backend, build: ProviderFactory) -> None:
    # Each piece in a write of its own, as a model streams: events arrive over many reads, not one.
    fake.paced = True
    provider = build(backend.plugin, **backend.settings_for(fake))
    chunks = await collect(provider, backend)
    assert "".join(c.delta for c in chunks) == DEFAULT_REPLY
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == REPLY_WORDS


async def test_max_tokens_reaches_the_upstream(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    result = await provider.chat(ask(backend.model, max_tokens=3))
    assert result.content == "Hello from the "
    assert result.usage is not None
    assert result.usage.completion_tokens == 3


async def test_wrong_key_is_an_auth_error_without_the_key(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    if fake.api_key is None:
        fake.api_key = "the-right-key-0123456789"  # Ollama behind an authenticating proxy
    wrong = "wrong-key-0123456789-secret"
    provider = build(backend.plugin, **backend.settings_for(fake, key=wrong))
    with pytest.raises(ProviderAuthError) as chat_error:
        await provider.chat(ask(backend.model))
    with pytest.raises(ProviderAuthError):
        await collect(provider, backend)
    with pytest.raises(ProviderAuthError):
        await provider.list_models()
    with pytest.raises(ProviderAuthError):
        await provider.health()
    assert chat_error.value.status == 502  # the caller's credentials are fine: AI-Lab's key is not
    assert wrong not in str(chat_error.value)
    assert f"ai-lab keys set {backend.name}" in str(chat_error.value)


async def test_unknown_model(fake: FakeServer, backend: Backend, build: ProviderFactory) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    with pytest.raises(ModelNotFound) as error:
        await provider.chat(ask("no-such-model"))
    assert error.value.status == 404
    with pytest.raises(ModelNotFound):
        await collect(provider, backend.__class__(**{**backend.__dict__, "model": "no-such-model"}))


async def test_rate_limited_carries_retry_after(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    fake.fail_status, fake.retry_after = 429, "12"
    provider = build(backend.plugin, **backend.settings_for(fake))
    with pytest.raises(ProviderRateLimited) as error:
        await provider.chat(ask(backend.model))
    assert error.value.retry_after == 12
    assert error.value.status == 429
    with pytest.raises(ProviderRateLimited):
        await collect(provider, backend)


async def test_server_error_is_unavailable_with_the_upstream_message(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    fake.fail_status = 500
    provider = build(backend.plugin, **backend.settings_for(fake))
    with pytest.raises(ProviderUnavailable) as error:
        await provider.chat(ask(backend.model))
    assert error.value.status == 502
    assert "The server had an error" in str(error.value)
    assert "500" in str(error.value)
    with pytest.raises(ProviderUnavailable):
        await provider.list_models()


async def test_connection_refused(backend: Backend, build: ProviderFactory, closed_port_url: str) -> None:
    prefix = backend.name.replace("-", "_")
    overrides = {f"{prefix}_base_url": closed_port_url, f"{prefix}_api_key": "some-key-0123456789"}
    if backend.name == "azure":
        overrides["azure_deployments"] = [backend.model]
    provider = build(backend.plugin, **overrides)
    with pytest.raises(ProviderUnavailable) as error:
        await provider.chat(ask(backend.model))
    assert "unreachable" in str(error.value)
    with pytest.raises(ProviderUnavailable):
        await collect(provider, backend)
    with pytest.raises(ProviderUnavailable):
        await provider.list_models()
    with pytest.raises(ProviderUnavailable):
        await provider.health()


@pytest.mark.parametrize("timeout_s", [0.08, 0.2])  # shorter than two late-start periods, and longer
async def test_timeout(fake: FakeServer, backend: Backend, build: ProviderFactory, timeout_s: float) -> None:
    fake.slow = True
    provider = build(backend.plugin, provider_timeout_seconds=timeout_s, **backend.settings_for(fake))
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=rf"did not answer within {timeout_s:g}s") as error:
        await provider.chat(ask(backend.model))
    assert error.value.status == 504
    assert time.monotonic() - started >= timeout_s  # never before its time
    with pytest.raises(ProviderTimeout):
        await collect(provider, backend)
    with pytest.raises(ProviderTimeout):
        await provider.list_models()


async def test_timeout_mid_stream(fake: FakeServer, backend: Backend, build: ProviderFactory) -> None:
    fake.stall_after = 2
    provider = build(backend.plugin, provider_timeout_seconds=0.2, **backend.settings_for(fake))
    received: list[str] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask(backend.model)):
            received.append(chunk.delta)

    with pytest.raises(ProviderTimeout):
        await consume()
    assert "".join(received) == "Hello from "


async def test_upstream_dropping_mid_stream(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    fake.drop_after = 3
    provider = build(backend.plugin, **backend.settings_for(fake))
    received: list[str] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask(backend.model)):
            received.append(chunk.delta)

    with pytest.raises(ProviderUnavailable) as error:
        await consume()
    assert "".join(received) == "Hello from the "
    assert backend.name in str(error.value)


async def test_closing_the_stream_releases_the_upstream(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    fake.endless = True
    provider = build(backend.plugin, **backend.settings_for(fake))
    stream = provider.stream(ask(backend.model))
    first = await anext(stream)
    assert first.delta == "Hello "
    await stream.aclose()
    # The upstream sees the connection go: it stops generating.
    await asyncio.wait_for(fake.disconnected.wait(), timeout=5)


@only(KEYED)
async def test_without_key(fake: FakeServer, backend: Backend, build: ProviderFactory) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake, key=None))
    assert await provider.list_models() == []
    health = await provider.health()
    assert not health.ok
    with pytest.raises(ProviderAuthError) as error:
        await provider.chat(ask(backend.model))
    env = f"AILAB_{backend.name.upper().replace('-', '_')}_API_KEY"
    assert f"ai-lab keys set {backend.name}" in str(error.value)
    assert env in str(error.value)
    with pytest.raises(ProviderAuthError):
        await collect(provider, backend)
    assert fake.requests == []  # no network call without a key


@only(OPENAI_WIRE)
async def test_forward_passes_bytes_through(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    assert isinstance(provider, SupportsOpenAIForward)
    payload = {"model": backend.model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    upstream = await provider.forward_chat_completions(payload)
    body = b"".join([chunk async for chunk in upstream.body])
    assert upstream.status == 200
    assert upstream.content_type.startswith("text/event-stream")
    assert body.startswith(b"data: {")
    assert body.endswith(b"data: [DONE]\n\n")
    assert fake.last.json == payload

    with pytest.raises(ModelNotFound, match=r"not found|unknown deployment"):  # raised, rebuilt, scrubbed
        await provider.forward_chat_completions({**payload, "model": "no-such-model", "stream": False})


@only(OPENAI_WIRE)
@pytest.mark.parametrize("timeout_s", [0.08, 0.3])  # shorter than two late-start periods, and longer
async def test_a_forwarded_json_answer_must_come_within_the_timeout(
    fake: FakeServer, backend: Backend, build: ProviderFactory, timeout_s: float
) -> None:
    fake.slow = True
    provider = build(backend.plugin, provider_timeout_seconds=timeout_s, **backend.settings_for(fake))
    assert isinstance(provider, SupportsOpenAIForward)
    payload = {"model": backend.model, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=rf"did not answer within {timeout_s:g}s") as error:
        await provider.forward_chat_completions(payload)
    assert error.value.status == 504
    assert time.monotonic() - started >= timeout_s  # never before its time
    await fake.disconnected.wait()  # the upstream call was dropped, not left running
    fake.slow = False
    upstream = await provider.forward_chat_completions(payload)  # and nothing of it is left pending
    assert upstream.status == 200 and b'"chat.completion"' in await base.read_whole(upstream.body)


@only(OPENAI_WIRE)
async def test_a_cancel_from_elsewhere_passes_through_a_forward_s_deadline(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    fake.slow = True
    provider = build(backend.plugin, provider_timeout_seconds=30, **backend.settings_for(fake))
    assert isinstance(provider, SupportsOpenAIForward)
    payload = {"model": backend.model, "messages": [{"role": "user", "content": "hi"}]}
    call = asyncio.create_task(provider.forward_chat_completions(payload))
    await fake.received.wait()
    call.cancel()  # the client left: a cancel, not a timeout
    with pytest.raises(asyncio.CancelledError):
        await call
    await fake.disconnected.wait()


@only([b for b in BACKENDS if b.name == "azure"])
async def test_azure_refuses_a_model_name_that_is_not_a_deployment(
    fake: FakeServer, backend: Backend, build: ProviderFactory
) -> None:
    provider = build(backend.plugin, **backend.settings_for(fake))
    for model in ("../../../v1/files?x=", "gpt4o-prod/../../../v1/files", "unknown"):
        with pytest.raises(ModelNotFound, match="configured deployments are azure/gpt4o-prod"):
            await provider.chat(ask(model))
        with pytest.raises(ModelNotFound):
            await provider.forward_chat_completions(
                {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            )
    assert fake.requests == []  # nothing reached the resource, let alone another path of it
    # A configured deployment whose name needs quoting stays one path segment.
    odd = build(backend.plugin, **{**backend.settings_for(fake), "azure_deployments": ["a b/c"]})
    with pytest.raises(ModelNotFound):  # the fake has no such deployment
        await odd.chat(ask("a b/c"))
    assert fake.last.url.startswith("/openai/deployments/a%20b%2Fc/chat/completions?")


def test_implements_answers_as_isinstance_and_keeps_the_answer_per_class() -> None:
    class Sees:
        async def can_see(self, model: str) -> bool:
            return True

    class Blind:
        pass

    assert base.implements(Sees(), base.SupportsVision) is True
    assert base.implements(Blind(), base.SupportsVision) is False
    assert base.implements(Sees(), base.SupportsTools) is False
    assert base._IMPLEMENTS[(Sees, base.SupportsVision)] is True  # asked once per class, then known
    assert base._IMPLEMENTS[(Blind, base.SupportsVision)] is False
