"""Fixtures of the provider tests: the fakes, a credential store double, and providers built on them.

``backend`` is parametrised over every remote provider: a :class:`Backend` knows its fake fixture, the
settings pointing at it, and a model the fake serves, so one test checks a behaviour for all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvloop

from ailab.config import Settings
from ailab.providers import anthropic, azure, cohere, gemini, huggingface, ollama, openai, openai_compat
from ailab.providers.base import ChatMessage, ChatRequest, Credential, CredentialStore
from ailab.providers.plugin import ProviderPlugin
from ailab.providers.remote import RemoteProvider
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import FakeServer
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.fixtures import (  # noqa: F401 - fixtures
    closed_port_url,
    fake_anthropic,
    fake_azure,
    fake_cohere,
    fake_gemini,
    fake_huggingface,
    fake_ollama,
    fake_openai,
    fake_openai_compat,
)
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeAzureOpenAI, FakeHuggingFace, FakeOpenAI
from tests.support.provider_settings import make_provider


class StaticCredentials:
    """A CredentialStore holding fixed credentials; records which services were asked for."""

    def __init__(self, **credentials: Credential) -> None:
        self.credentials = {name.replace("_", "-"): c for name, c in credentials.items()}
        self.asked: list[str] = []

    async def get(self, service: str) -> Credential | None:
        self.asked.append(service)
        return self.credentials.get(service)


@dataclass(frozen=True)
class Backend:
    """How to point one provider at its fake."""

    name: str
    fake: Callable[[], FakeServer]
    plugin: ProviderPlugin
    model: str
    key_required: bool = True

    def settings_for(self, fake: FakeServer, *, key: str | None = "fake-default") -> dict[str, Any]:
        """Settings overrides: base URL (and deployments) of the fake, and ``key`` (default: the fake's)."""
        prefix = self.name.replace("-", "_")
        values: dict[str, Any] = {f"{prefix}_base_url": fake.base_url}
        api_key = fake.api_key if key == "fake-default" else key
        if api_key is not None:
            values[f"{prefix}_api_key"] = api_key
        if self.name == "azure":
            values["azure_deployments"] = list(fake.models)
        return values


BACKENDS = [
    Backend("openai", FakeOpenAI, openai.PLUGIN, "gpt-4o-mini"),
    Backend("openai-compat", FakeOpenAI, openai_compat.PLUGIN, "gpt-4o-mini", key_required=False),
    Backend("azure", FakeAzureOpenAI, azure.PLUGIN, "gpt4o-prod"),
    Backend("huggingface", FakeHuggingFace, huggingface.PLUGIN, "meta-llama/Llama-3.1-8B-Instruct"),
    Backend("anthropic", FakeAnthropic, anthropic.PLUGIN, "claude-3-5-haiku-latest"),
    Backend("gemini", FakeGemini, gemini.PLUGIN, "gemini-2.0-flash"),
    Backend("cohere", FakeCohere, cohere.PLUGIN, "command-r-plus-08-2024"),
    Backend("ollama", FakeOllama, ollama.PLUGIN, "llama3:latest", key_required=False),
]


KEYED = [b for b in BACKENDS if b.key_required]
OPENAI_WIRE = [b for b in BACKENDS if b.name in ("openai", "openai-compat", "azure", "huggingface")]


def only(backends: list[Backend]) -> pytest.MarkDecorator:
    """Run a test for these backends only (instead of all of them)."""
    return pytest.mark.parametrize("backend", backends, ids=[b.name for b in backends], indirect=True)


@pytest.fixture(params=BACKENDS, ids=[b.name for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each remote provider in turn."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def fake(backend: Backend) -> AsyncIterator[FakeServer]:
    """The started fake server of ``backend``."""
    async with backend.fake() as server:
        yield server


ProviderFactory = Callable[..., Any]


@pytest.fixture
async def build(make_settings: Callable[..., Settings]) -> AsyncIterator[ProviderFactory]:
    """``build(plugin, credentials=None, **settings)``: the plugin's provider (closed after the test).

    Settings are named as in the environment (``openai_base_url``). Without ``credentials`` the keys
    come from the plugin's settings, as in production without a vault.
    """
    made: list[RemoteProvider] = []

    def factory(plugin: ProviderPlugin, credentials: CredentialStore | None = None, **overrides: Any) -> Any:
        provider = make_provider(plugin, make_settings(**overrides), credentials)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.aclose()


def ask(model: str, text: str = "Say hello", **kwargs: Any) -> ChatRequest:
    """A request with a system prompt and one user message."""
    messages = [ChatMessage("system", "You are terse."), ChatMessage("user", text)]
    return ChatRequest(model=model, messages=messages, **kwargs)


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variables from the environment: the test sets those it means."""
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "no_proxy",
        "NO_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The loops tests run on: asyncio's; and uvloop's (the server's) too for ``test_http1.py``, whose
    client works on the loops' transports directly."""
    if item.path.name == "test_http1.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
