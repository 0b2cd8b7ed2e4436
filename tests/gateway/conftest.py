"""Fixtures of the gateway tests (the app on a recording upstream is ``upstream_client`` in
tests/conftest.py): the generation records it reports, and the official ``openai`` SDK talking to the app in process (httpx's ASGI transport).

Each test that builds the app runs through the fast lane and through FastAPI's routes (``both_lanes``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import openai
import pytest
from pydantic import SecretStr

from ailab.config import Settings
from ailab.providers.registry import GenerationRecord
from tests.conftest import AppClientFactory, both_lanes
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import FakeServer
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both_lanes(metafunc)


@pytest.fixture
def records(upstream_client: httpx.AsyncClient) -> list[GenerationRecord]:
    """Every GenerationRecord the app reports from now on."""
    seen: list[GenerationRecord] = []
    upstream_client.services.providers.observers.append(seen.append)  # type: ignore[attr-defined]
    return seen


@pytest.fixture
async def sdk(upstream_client: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK, unmodified, with ``base_url=<app>/v1`` and the admin's bearer token as key."""
    client = sdk_for(upstream_client)
    yield client
    await client.close()


def sdk_for(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """An SDK client on the app behind ``client``, with its credentials."""
    token = client.headers["Authorization"].removeprefix("Bearer ")
    http = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    return openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=token, http_client=http, max_retries=0)


@dataclass
class Lab:
    """The app, its SDK, and the fakes behind its providers (by provider name)."""

    client: httpx.AsyncClient
    sdk: openai.AsyncOpenAI
    fakes: dict[str, FakeServer]

    def fake(self, model: str) -> FakeServer:
        return self.fakes[model.split("/", maxsplit=1)[0]]


@asynccontextmanager
async def translated_lab(
    app_client: AppClientFactory,
    settings: Settings,
    upstream: FakeOpenAI,
    *,
    ollama_models: list[str] | None = None,
) -> AsyncIterator[Lab]:
    """The app with anthropic, gemini, cohere and ollama (``ollama_models``, else the fake's own) on
    fakes, and openai-compat on ``upstream``."""
    async with (
        FakeAnthropic() as anthropic,
        FakeGemini() as gemini,
        FakeCohere() as cohere,
        FakeOllama(models=ollama_models) as ollama,
    ):
        configured = configure(
            settings,
            anthropic_base_url=anthropic.base_url,
            anthropic_api_key=SecretStr(anthropic.api_key or ""),
            gemini_base_url=gemini.base_url,
            gemini_api_key=SecretStr(gemini.api_key or ""),
            cohere_base_url=cohere.base_url,
            cohere_api_key=SecretStr(cohere.api_key or ""),
            ollama_base_url=ollama.base_url,
            openai_compat_base_url=upstream.base_url,
        )
        async with app_client(configured) as client:
            sdk = sdk_for(client)
            fakes: dict[str, FakeServer] = {
                "anthropic": anthropic,
                "gemini": gemini,
                "cohere": cohere,
                "ollama": ollama,
                "openai-compat": upstream,
            }
            yield Lab(client, sdk, fakes)
            await sdk.close()
