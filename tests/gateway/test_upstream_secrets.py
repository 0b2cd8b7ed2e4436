"""An upstream that quotes the key it was sent (OpenAI does: "Incorrect API key provided: sk-...") must
not show the vault's key to anyone: errors are rebuilt in OpenAI's shape, secrets scrubbed, on every path
(``/v1`` JSON and stream, ``/chat``, the benchmark, the key test)."""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from ailab.config import Settings
from tests.chat.conftest import parse_sse
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure

RIGHT = "sk-proj-" + "".join(secrets.choice(string.ascii_letters) for _ in range(48))
WRONG = "sk-proj-" + "".join(secrets.choice(string.ascii_letters) for _ in range(48))
ASK = {"model": "openai-compat/echo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def upstream_with_key() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=RIGHT, models=["echo"], echo=True) as server:
        yield server


def no_secret(text: str) -> None:
    assert RIGHT not in text and WRONG not in text


async def test_a_refused_key_never_comes_back_from_the_gateway(
    app_client: AppClientFactory, settings: Settings, upstream_with_key: FakeOpenAI
) -> None:
    overrides = {
        "openai_compat_base_url": upstream_with_key.base_url,
        "openai_compat_api_key": SecretStr(WRONG),
    }
    async with app_client(configure(settings, **overrides)) as client:
        for body in (ASK, {**ASK, "stream": True}):
            answer = await client.post("/v1/chat/completions", json=body)
            assert upstream_with_key.last.header("authorization") == f"Bearer {WRONG}"  # it was sent
            no_secret(answer.text)
            assert answer.status_code == 502  # AI-Lab's key was refused, not the caller's credentials
            error = answer.json()["error"]
            assert error["code"] == "invalid_api_key"
            assert "Incorrect API key provided: ***" in error["message"]
            assert "ai-lab keys set openai-compat" in error["message"]
        chat = await client.post(
            "/chat", json={"message": "hi", "model": "openai-compat/echo", "pipeline": "direct"}
        )
        no_secret(chat.text)
        assert chat.status_code == 502 and chat.json()["status"] == "error"
        bench = await client.post(
            "/benchmark/llm", params={"model_name": "openai-compat/echo", "iterations": 1}
        )
        no_secret(bench.text)


async def test_an_error_event_mid_stream_is_rebuilt_without_the_key(
    app_client: AppClientFactory, settings: Settings, upstream_with_key: FakeOpenAI
) -> None:
    overrides = {
        "openai_compat_base_url": upstream_with_key.base_url,
        "openai_compat_api_key": SecretStr(RIGHT),
    }
    upstream_with_key.error_after = 1  # one piece, then an error event quoting the key it got
    async with app_client(configure(settings, **overrides)) as client:
        answer = await client.post("/v1/chat/completions", json={**ASK, "stream": True})
        no_secret(answer.text)
        events = parse_sse(answer.text)
        assert events[0]["choices"][0]["delta"]["content"] == ""  # the upstream's own first events
        assert events[1]["choices"][0]["delta"]["content"] == "echo: "
        error = events[2]["error"]
        assert error["message"].startswith("openai-compat failed mid-stream: Incorrect API key provided: ***")
        assert error["type"] == "server_error"
        chat = await client.post(
            "/chat",
            json={"message": "hi", "model": "openai-compat/echo", "pipeline": "direct", "stream": True},
        )
        no_secret(chat.text)
        assert any(e["type"] == "error" for e in parse_sse(chat.text) if isinstance(e, dict))


async def test_the_key_test_and_key_shapes_are_scrubbed(
    app_client: AppClientFactory, settings: Settings, upstream_with_key: FakeOpenAI
) -> None:
    overrides = {"openai_compat_base_url": upstream_with_key.base_url}
    async with app_client(configure(settings, **overrides)) as client:
        stored = await client.post(
            "/api-keys",
            json={
                "service_name": "openai-compat",
                "api_key": WRONG,
                "config": {"base_url": upstream_with_key.base_url},
            },
        )
        assert stored.status_code == 200, stored.text
        tested = await client.post("/api-keys/openai-compat/test")
        no_secret(tested.text)
        assert tested.json()["result"] == "invalid"
