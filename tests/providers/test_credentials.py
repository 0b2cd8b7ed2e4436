"""Where providers find keys and endpoints: a CredentialStore asked per request, else settings."""

from __future__ import annotations

import pytest

from ailab.errors import ProviderAuthError, ProviderUnavailable
from ailab.providers import anthropic, azure, ollama, openai, openai_compat
from ailab.providers.base import Credential
from ailab.providers.registry import ProviderRegistry
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeAzureOpenAI, FakeOpenAI
from tests.providers.conftest import ProviderFactory, StaticCredentials, ask


async def test_store_is_asked_per_request_so_a_new_key_works_at_once(
    fake_openai: FakeOpenAI, build: ProviderFactory
) -> None:
    store = StaticCredentials()
    provider = build(openai.PLUGIN, store, openai_base_url=fake_openai.base_url)
    assert await provider.list_models() == []
    with pytest.raises(ProviderAuthError):
        await provider.chat(ask("gpt-4o-mini"))

    store.credentials["openai"] = Credential(api_key=fake_openai.api_key)  # e.g. `ai-lab keys set openai`
    result = await provider.chat(ask("gpt-4o-mini"))
    assert result.content
    assert fake_openai.last.header("authorization") == f"Bearer {fake_openai.api_key}"
    assert store.asked.count("openai") == 3

    store.credentials["openai"] = Credential(api_key="sk-rotated-but-wrong-000000000")
    with pytest.raises(ProviderAuthError):
        await provider.chat(ask("gpt-4o-mini"))


async def test_base_url_from_the_credential_wins_over_settings(
    fake_anthropic: FakeAnthropic, build: ProviderFactory, closed_port_url: str
) -> None:
    store = StaticCredentials(
        anthropic=Credential(
            api_key=fake_anthropic.api_key, config={"base_url": fake_anthropic.base_url + "/"}
        )
    )
    provider = build(anthropic.PLUGIN, store, anthropic_base_url=closed_port_url)
    assert [m.id for m in await provider.list_models()] == list(fake_anthropic.models)
    assert fake_anthropic.last.path == "/v1/models"


async def test_azure_endpoint_deployment_and_version_from_the_credential(
    fake_azure: FakeAzureOpenAI, build: ProviderFactory
) -> None:
    config = {"endpoint": fake_azure.base_url, "deployment": "mini-dev", "api_version": "2024-06-01"}
    store = StaticCredentials(azure=Credential(api_key=fake_azure.api_key, config=config))
    provider = build(azure.PLUGIN, store, azure_deployments=["from-settings"])
    assert [m.id for m in await provider.list_models()] == ["mini-dev"]
    result = await provider.chat(ask("mini-dev"))
    assert result.content
    assert fake_azure.last.path == "/openai/deployments/mini-dev/chat/completions"
    assert fake_azure.last.query == {"api-version": "2024-06-01"}


async def test_azure_without_endpoint_says_what_to_set(build: ProviderFactory) -> None:
    provider = build(azure.PLUGIN, StaticCredentials(azure=Credential(api_key="0" * 32)), azure_base_url="")
    assert await provider.list_models() == []
    assert not (await provider.health()).ok
    with pytest.raises(ProviderUnavailable, match="AILAB_AZURE_BASE_URL"):
        await provider.chat(ask("gpt4o-prod"))


async def test_openai_compat_is_inert_without_base_url(build: ProviderFactory) -> None:
    store = StaticCredentials()
    provider = build(openai_compat.PLUGIN, store, openai_compat_base_url="")
    assert provider.name == "openai-compat"
    assert await provider.list_models() == []
    health = await provider.health()
    assert not health.ok
    assert "AILAB_OPENAI_COMPAT_BASE_URL" in health.detail
    with pytest.raises(ProviderUnavailable, match="AILAB_OPENAI_COMPAT_BASE_URL"):
        await provider.chat(ask("any"))


async def test_openai_compat_base_url_from_the_vault(
    fake_openai_compat: FakeOpenAI, build: ProviderFactory
) -> None:
    store = StaticCredentials(
        openai_compat=Credential(api_key="", config={"base_url": fake_openai_compat.base_url})
    )
    provider = build(openai_compat.PLUGIN, store, openai_compat_base_url="")
    assert [m.id for m in await provider.list_models()] == ["Qwen/Qwen2.5-0.5B-Instruct"]
    assert fake_openai_compat.last.header("authorization") is None  # an empty key is no key


async def test_ollama_unreachable_is_skipped_by_the_registry(
    fake_openai: FakeOpenAI, build: ProviderFactory, closed_port_url: str
) -> None:
    overrides = {
        "ollama_base_url": closed_port_url,
        "openai_base_url": fake_openai.base_url,
        "openai_api_key": fake_openai.api_key,
    }
    down = build(ollama.PLUGIN, **overrides)
    up = build(openai.PLUGIN, **overrides)
    with pytest.raises(ProviderUnavailable):
        await down.list_models()
    registry = ProviderRegistry([down, up])
    listed = await registry.list_models()
    assert [(name, m.id) for name, m in listed] == [("openai", "gpt-4o-mini"), ("openai", "gpt-4o")]


async def test_ollama_without_settings_key_lists_models(
    fake_ollama: FakeOllama, build: ProviderFactory
) -> None:
    provider = build(ollama.PLUGIN, ollama_base_url=fake_ollama.base_url)
    assert (await provider.health()).ok
    assert len(await provider.list_models()) == 2
