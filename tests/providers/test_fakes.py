"""The fakes themselves: the official SDK accepts them, and the OpenAI one runs standalone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import openai as openai_sdk
import pytest

from tests.fakes.base import DEFAULT_REPLY
from tests.fakes.openai_server import FakeAzureOpenAI, FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]


async def test_official_sdk_accepts_the_openai_fake(fake_openai: FakeOpenAI) -> None:
    async with openai_sdk.AsyncOpenAI(base_url=fake_openai.base_url, api_key=fake_openai.api_key) as client:
        assert [m.id for m in (await client.models.list()).data] == ["gpt-4o-mini", "gpt-4o"]
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == DEFAULT_REPLY
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == len(DEFAULT_REPLY.split())
        with pytest.raises(openai_sdk.NotFoundError):
            await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    async with openai_sdk.AsyncOpenAI(
        base_url=fake_openai.base_url, api_key="sk-wrong", max_retries=0
    ) as bad:
        with pytest.raises(openai_sdk.AuthenticationError):
            await bad.models.list()


async def test_official_sdk_accepts_the_azure_fake(fake_azure: FakeAzureOpenAI) -> None:
    async with openai_sdk.AsyncAzureOpenAI(
        azure_endpoint=fake_azure.base_url, api_key=fake_azure.api_key, api_version="2024-10-21"
    ) as client:
        answer = await client.chat.completions.create(
            model="gpt4o-prod", messages=[{"role": "user", "content": "hi"}]
        )
    assert answer.choices[0].message.content == DEFAULT_REPLY
    assert fake_azure.last.path == "/openai/deployments/gpt4o-prod/chat/completions"


@pytest.mark.slow
def test_openai_fake_runs_standalone() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--reply", "standalone ok"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once listening
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        with httpx.Client(base_url=base_url, timeout=10) as client:
            assert client.get("/models").json()["data"][0]["id"] == "gpt-4o-mini"
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": True}
            streamed = client.post("/chat/completions", json=body, headers={"Authorization": "Bearer any"})
            assert streamed.headers["content-type"].startswith("text/event-stream")
            assert streamed.text.endswith("data: [DONE]\n\n")
            answer = client.post("/chat/completions", json={**body, "stream": False}).json()
            assert answer["choices"][0]["message"]["content"] == "standalone ok"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
