"""Plugin discovery: providers come from ``ailab.providers`` entry points, built-ins and third-party alike."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

import pytest

from ailab.config import Settings
from ailab.providers.base import ChatMessage, ChatRequest, Provider
from ailab.providers.registry import ENTRY_POINT_GROUP, ProviderRegistry, SettingsCredentials


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


async def test_a_plugin_entry_point_appears_in_the_models(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    registry = ProviderRegistry.from_entry_points(
        settings,
        SettingsCredentials(settings),
        entries=[entry("fake", "tests.providers.plugin_example:create")],
    )
    try:
        assert [(name, m.id) for name, m in await registry.list_models()] == [("fake", "echo-1")]
        provider, model = registry.resolve("fake/echo-1")
        result = await provider.chat(ChatRequest(model=model, messages=[ChatMessage("user", "abc")]))
        assert result.content == "cba"
    finally:
        await registry.aclose()


async def test_a_broken_plugin_is_skipped_and_logged(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    entries = [
        entry("broken", "tests.providers.plugin_example:create_broken"),
        entry("missing", "tests.providers.no_such_module:create"),
        entry("fake", "tests.providers.plugin_example:create"),
    ]
    with caplog.at_level("ERROR", logger="ailab.providers"):
        registry = ProviderRegistry.from_entry_points(
            settings, SettingsCredentials(settings), entries=entries
        )
    try:
        assert list(registry.providers) == ["fake"]
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "'broken'" in logged
        assert "'missing'" in logged
    finally:
        await registry.aclose()


def test_builtin_remote_providers_are_entry_points() -> None:
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name in (
        "openai",
        "openai-compat",
        "azure",
        "anthropic",
        "gemini",
        "cohere",
        "huggingface",
        "ollama",
    ):
        assert name in names, name
        assert names[name].startswith("ailab.providers.")


async def test_builtin_remote_providers_load_without_keys(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    wanted = {"openai", "openai-compat", "azure", "anthropic", "gemini", "cohere", "huggingface", "ollama"}
    entries = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name in wanted]
    registry = ProviderRegistry.from_entry_points(settings, SettingsCredentials(settings), entries=entries)
    try:
        assert set(registry.providers) == wanted
        for name, provider in registry.providers.items():
            assert isinstance(provider, Provider)
            assert provider.name == name
    finally:
        await registry.aclose()
