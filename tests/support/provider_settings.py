"""Provider settings in tests, named as in the environment.

Tests write ``openai_compat_base_url=...`` (as ``AILAB_OPENAI_COMPAT_BASE_URL``); these helpers fold such
names into ``Settings.providers`` (``{"openai-compat": {"base_url": ...}}``), where each plugin's own
settings class reads and validates them.
"""

from __future__ import annotations

from typing import Any

from ailab.config import Settings
from ailab.providers.base import CredentialStore
from ailab.providers.plugin import ProviderContext, ProviderPlugin
from ailab.providers.plugins import Plugins, SettingsCredentials, discover

_PREFIXES = sorted(((name.replace("-", "_") + "_", name) for name in discover()), key=lambda p: -len(p[0]))


def fold(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every ``<plugin>_<field>`` key moved into ``providers[<plugin>][<field>]``."""
    folded: dict[str, Any] = {}
    providers: dict[str, dict[str, Any]] = {k: dict(v) for k, v in values.get("providers", {}).items()}
    for key, value in values.items():
        if key == "providers":
            continue
        plugin = next((name for prefix, name in _PREFIXES if key.startswith(prefix)), None)
        if plugin is None or key in Settings.model_fields:
            folded[key] = value
        else:
            providers.setdefault(plugin, {})[key.removeprefix(plugin.replace("-", "_") + "_")] = value
    folded["providers"] = providers
    return folded


def configure(settings: Settings, **values: Any) -> Settings:
    """A copy of ``settings`` with ``values`` (core fields, or provider settings named as above) on top."""
    folded = fold({"providers": settings.providers, **values})
    return settings.model_copy(update=folded)


def make_provider(
    plugin: ProviderPlugin, settings: Settings, credentials: CredentialStore | None = None
) -> Any:
    """``plugin``'s provider as the server builds it from ``settings`` (keys from its settings by default)."""
    plugins = Plugins(
        {plugin.name: plugin}, {plugin.name: plugin.load_settings(settings.providers.get(plugin.name))}
    )
    context = ProviderContext(data_dir=settings.data_dir, timeout_s=settings.provider_timeout_seconds)
    store = credentials if credentials is not None else SettingsCredentials(plugins)
    return plugin.create(plugins.settings[plugin.name], store, context)
