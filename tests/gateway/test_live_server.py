"""The gateway through a real ``ai-lab serve`` process (uvicorn, the fast lane, real sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from cryptography.fernet import Fernet

from tests.conftest import ADMIN_PASSWORD
from tests.fakes.openai_server import FakeOpenAI
from tests.support.server import LiveServer, run_server

pytestmark = pytest.mark.slow  # starts server or CLI processes


@pytest.fixture
async def live(tmp_path: Path, upstream: FakeOpenAI) -> AsyncIterator[tuple[LiveServer, str]]:
    env = {
        "AILAB_DATA_DIR": str(tmp_path / "data"),
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_MASTER_KEY": Fernet.generate_key().decode(),
        "AILAB_OPENAI_COMPAT_BASE_URL": upstream.base_url,
    }
    # Start-up polls readiness synchronously; the fake upstream is not needed until requests flow.
    with run_server(env, log_path=tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        yield server, login.json()["access_token"]


async def test_sdk_json_and_stream_with_usage(live: tuple[LiveServer, str], upstream: FakeOpenAI) -> None:
    server, token = live
    sdk = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=token, max_retries=0)
    try:
        answer = await sdk.chat.completions.create(
            model="openai-compat/echo", messages=[{"role": "user", "content": "over the wire"}]
        )
        assert answer.choices[0].message.content == "echo: over the wire"
        assert answer.usage is not None
        assert answer.usage.completion_tokens > 0

        stream = await sdk.chat.completions.create(
            model="openai-compat/echo",
            messages=[{"role": "user", "content": "streamed"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage
        assert text == "echo: streamed"
        assert usage is not None
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert upstream.last.json["model"] == "echo"

        wrong = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
        async with wrong:
            with pytest.raises(openai.AuthenticationError):
                await wrong.models.list()
    finally:
        await sdk.close()
    assert "POST /v1/chat/completions 200" in server.log()  # the fast lane logs the route template


async def test_client_gone_mid_stream_closes_the_upstream(
    live: tuple[LiveServer, str], upstream: FakeOpenAI
) -> None:
    server, token = live
    body = {"model": "openai-compat/echo", "messages": [{"role": "user", "content": "go"}], "stream": True}
    upstream.endless = True  # streams "echo: go" over and over until the client goes away
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
        client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as r,
    ):
        assert r.status_code == 200
        received = b""
        async for chunk in r.aiter_bytes():
            received += chunk
            if b"echo" in received:
                break  # a token arrived; now hang up mid-stream
        assert b"echo" in received
    await asyncio.wait_for(upstream.disconnected.wait(), timeout=20)


async def test_client_gone_before_a_json_answer_drops_the_upstream_request(
    live: tuple[LiveServer, str], upstream: FakeOpenAI
) -> None:
    server, token = live
    body = {"model": "openai-compat/echo", "messages": [{"role": "user", "content": "go"}]}
    upstream.slow = True  # holds the request until the test releases it (it never does)

    async def ask() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"})

    request = asyncio.create_task(ask())
    await asyncio.wait_for(upstream.received.wait(), timeout=20)
    request.cancel()  # the client hangs up: its connection closes
    with pytest.raises(asyncio.CancelledError):
        await request
    # As with OpenAI, hanging up cancels the work: AI-Lab drops its own request upstream at once.
    await asyncio.wait_for(upstream.disconnected.wait(), timeout=20)


@pytest.mark.slow
async def test_the_openai_sdk_talks_to_the_agents_on_the_embedded_model(live: tuple[LiveServer, str]) -> None:
    server, token = live
    sdk = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=token, max_retries=0)
    try:
        assert "pipeline/agents" in [m.id async for m in sdk.models.list()]
        question = [{"role": "user", "content": "What is the capital of France?"}]
        answer = await sdk.chat.completions.create(model="pipeline/agents", messages=question, temperature=0)
        message = answer.choices[0].message
        assert message.content and message.content.strip()
        trace = getattr(message, "reasoning_content", "")
        assert trace.startswith("[1] CEO") and "decided by the agent" in trace
        assert answer.usage is not None and answer.usage.completion_tokens > 0

        stream = await sdk.chat.completions.create(
            model="pipeline/agents", messages=question, temperature=0, stream=True
        )
        reasoning, content = "", ""
        async for chunk in stream:
            if chunk.choices:
                delta = chunk.choices[0].delta
                reasoning += getattr(delta, "reasoning_content", None) or ""
                content += delta.content or ""
        assert reasoning.startswith("[CEO] ") and "[CEO -> " in reasoning
        assert content.strip()
    finally:
        await sdk.close()
