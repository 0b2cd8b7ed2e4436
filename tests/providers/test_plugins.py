"""Plugin discovery: providers come from ``ailab.providers`` entry points, built-ins and third-party alike."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

import pytest

from ailab.config import ConfigError, Settings
from ailab.providers.base import ChatMessage, ChatRequest, Provider
from ailab.providers.plugin import ProviderContext
from ailab.providers.plugins import ENTRY_POINT_GROUP, Plugins, SettingsCredentials
from ailab.providers.registry import ProviderRegistry


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def registry_of(settings: Settings, plugins: Plugins) -> ProviderRegistry:
    context = ProviderContext(data_dir=settings.data_dir, timeout_s=settings.provider_timeout_seconds)
    return ProviderRegistry.from_plugins(plugins, SettingsCredentials(plugins), context)


async def test_a_plugin_entry_point_appears_in_the_models(make_settings: Callable[..., Settings]) -> None:
    plugins = Plugins.load(entries=[entry("fake", "tests.providers.plugin_example:PLUGIN")])
    registry = registry_of(make_settings(), plugins)
    try:
        assert [(name, m.id) for name, m in await registry.list_models()] == [("fake", "echo-1")]
        provider, model = registry.resolve("fake/echo-1")
        result = await provider.chat(ChatRequest(model=model, messages=[ChatMessage("user", "abc")]))
        assert result.content == "cba"
        assert registry.plugins.get("FAKE").description == "reverses the text"
    finally:
        await registry.aclose()


async def test_a_broken_plugin_is_skipped_and_logged(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    entries = [
        entry("broken", "tests.providers.plugin_example:BROKEN"),  # its factory raises
        entry("missing", "tests.providers.no_such_module:PLUGIN"),  # does not import
        entry("function", "tests.providers.plugin_example:NOT_A_PLUGIN"),  # not a ProviderPlugin
        entry("fake", "tests.providers.plugin_example:PLUGIN"),
    ]
    with caplog.at_level("ERROR", logger="ailab.providers"):
        registry = registry_of(make_settings(), Plugins.load(entries=entries))
    try:
        assert list(registry.providers) == ["fake"]
        logged = " ".join(r.getMessage() for r in caplog.records)
        for name in ("'broken'", "'missing'", "'function'"):
            assert name in logged
    finally:
        await registry.aclose()


def test_builtin_providers_are_entry_points_naming_their_plugin() -> None:
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    builtin = (
        "local",
        "openai",
        "openai-compat",
        "azure",
        "anthropic",
        "gemini",
        "cohere",
        "huggingface",
        "ollama",
    )
    for name in builtin:
        assert names[name].startswith("ailab.providers.") and names[name].endswith(":PLUGIN"), name


async def test_builtin_providers_load_without_keys(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    wanted = {"openai", "openai-compat", "azure", "anthropic", "gemini", "cohere", "huggingface", "ollama"}
    entries = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name in wanted]
    registry = registry_of(settings, Plugins.load(entries=entries))
    try:
        assert set(registry.providers) == wanted
        for name, provider in registry.providers.items():
            assert isinstance(provider, Provider)
            assert provider.name == name
    finally:
        await registry.aclose()


def test_each_plugin_reads_its_own_settings_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AILAB_OLLAMA_BASE_URL", "http://10.0.0.5:11434")
    monkeypatch.setenv("AILAB_OPENAI_API_KEY", "sk-from-the-environment-0123456789")
    plugins = Plugins.load({"openai": {"base_url": "http://127.0.0.1:9/v1"}})
    assert plugins.settings["ollama"].base_url == "http://10.0.0.5:11434"  # type: ignore[attr-defined]
    credential = plugins.settings_credential("openai")
    assert credential is not None and credential.api_key == "sk-from-the-environment-0123456789"
    assert credential.config == {"base_url": "http://127.0.0.1:9/v1"}
    assert plugins.canonical("Google") == "gemini" and plugins.canonical("mistral") is None


def test_invalid_plugin_settings_stop_the_start_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AILAB_LOCAL_TEMPERATURE", "hot")
    with pytest.raises(ConfigError, match="AILAB_LOCAL_TEMPERATURE"):
        Plugins.load()


def test_the_core_settings_name_no_provider() -> None:
    plugin_names = {name.replace("-", "_") for name in Plugins.load().plugins}
    for field in Settings.model_fields:
        assert field.split("_")[0] not in plugin_names, field
