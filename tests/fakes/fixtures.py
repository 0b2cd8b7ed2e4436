"""pytest fixtures: one started fake server per provider, stopped after the test.

Each yields the server object: ``.base_url`` (what the provider's client is configured with),
``.api_key`` (the key it accepts), ``.requests`` (what it received), ``.models``, and the behaviour
switches of :class:`tests.fakes.base.FakeServer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeAzureOpenAI, FakeHuggingFace, FakeOpenAI
from tests.support.postgres import free_port


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """OpenAI's API (base_url ends in /v1; bearer key ``fake_openai.api_key``)."""
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def fake_openai_compat() -> AsyncIterator[FakeOpenAI]:
    """An OpenAI-compatible server that takes no key (like a local vLLM or llama.cpp server)."""
    async with FakeOpenAI(any_key=True, models=["Qwen/Qwen2.5-0.5B-Instruct"]) as server:
        yield server


@pytest.fixture
async def fake_azure() -> AsyncIterator[FakeAzureOpenAI]:
    """Azure OpenAI (base_url is the endpoint; ``.models`` are the deployment names)."""
    async with FakeAzureOpenAI() as server:
        yield server


@pytest.fixture
async def fake_huggingface() -> AsyncIterator[FakeHuggingFace]:
    """Hugging Face's OpenAI-compatible router (base_url ends in /v1)."""
    async with FakeHuggingFace() as server:
        yield server


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    """Anthropic's Messages API."""
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    """Google's Gemini API (v1beta)."""
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def fake_cohere() -> AsyncIterator[FakeCohere]:
    """Cohere's v2 chat API."""
    async with FakeCohere() as server:
        yield server


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeOllama]:
    """Ollama's native API (no key)."""
    async with FakeOllama() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"
