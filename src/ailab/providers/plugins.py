"""The installed provider plugins, found through entry points, with their settings loaded.

Every backend, the built-in ones included, is an entry point of the group ``ailab.providers`` naming a
:class:`~ailab.providers.plugin.ProviderPlugin` (see ``pyproject.toml``); a third-party package adds one
the same way. A plugin that fails to load, or names something else, is logged and skipped: one broken
package must not stop the server. Settings that do not validate do stop it, naming the plugin.

:class:`Plugins` is what the rest of AI-Lab asks about providers without naming any: which exist
(by name or alias), their settings, the credential their settings give, the format of their keys.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError

from ailab.config import ConfigError
from ailab.errors import NotFound
from ailab.providers.base import Credential
from ailab.providers.plugin import ProviderPlugin, ProviderSettings

ENTRY_POINT_GROUP = "ailab.providers"
log = logging.getLogger("ailab.providers")


@functools.lru_cache(maxsize=8)
def _installed(path: tuple[str, ...]) -> tuple[EntryPoint, ...]:
    """The group's entry points on this ``sys.path``: reading every installed package's metadata takes
    ~10 ms, so a process that builds its services more than once (the tests) reads it once per path."""
    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def discover(entries: Iterable[EntryPoint] | None = None) -> dict[str, ProviderPlugin]:
    """Every installed plugin by name (``entries``: these entry points instead of the installed ones)."""
    found: dict[str, ProviderPlugin] = {}
    for entry in entries if entries is not None else _installed(tuple(sys.path)):
        try:
            plugin = entry.load()
        except Exception:
            log.exception("provider plugin %r failed to load", entry.name)
            continue
        if not isinstance(plugin, ProviderPlugin):
            kind = type(plugin).__name__
            log.error("entry point %r names a %s, not a ProviderPlugin: skipped", entry.name, kind)
            continue
        found[plugin.name] = plugin
    return found


class Plugins:
    """The plugins of this process and their settings (see the module docstring)."""

    def __init__(
        self, plugins: Mapping[str, ProviderPlugin], settings: Mapping[str, ProviderSettings]
    ) -> None:
        self.plugins = dict(plugins)
        self.settings = dict(settings)
        self._names = {name: name for name in plugins}
        for plugin in plugins.values():
            for alias in plugin.aliases:
                self._names.setdefault(alias, plugin.name)

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        entries: Iterable[EntryPoint] | None = None,
    ) -> Plugins:
        """Discover the plugins and read their settings (``AILAB_<NAME>_*``, ``overrides[name]`` on top).

        Raises :class:`ConfigError` naming the plugin whose settings do not validate.
        """
        plugins = discover(entries)
        overrides = overrides or {}
        settings: dict[str, ProviderSettings] = {}
        for name, plugin in plugins.items():
            try:
                settings[name] = plugin.load_settings(overrides.get(name))
            except ValidationError as exc:
                prefix = str(plugin.settings.model_config.get("env_prefix", ""))
                problems = "; ".join(
                    f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
                )
                raise ConfigError(f"the settings of the {name!r} provider are invalid: {problems}") from None
        return cls(plugins, settings)

    def canonical(self, name: str) -> str | None:
        """The plugin a user-given name means (case-insensitive, aliases like 'google'), or None."""
        return self._names.get(name.strip().lower())

    def get(self, name: str) -> ProviderPlugin:
        """The plugin called ``name`` (or an alias of it); :class:`NotFound` naming the installed ones."""
        canonical = self.canonical(name)
        if canonical is None:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise NotFound(f"unknown service {shown!r}; supported services: {', '.join(self.keyed())}")
        return self.plugins[canonical]

    def keyed(self) -> list[str]:
        """The plugins that take a credential (what the vault can store), by name."""
        return [name for name, plugin in self.plugins.items() if plugin.credential is not None]

    def settings_credential(self, name: str) -> Credential | None:
        """The credential the plugin's settings give (``AILAB_<NAME>_API_KEY``, ...), or None.

        Settings without a key give none for a plugin whose keys are required (a base URL alone is not
        a credential there).
        """
        settings, plugin = self.settings.get(name), self.plugins.get(name)
        credential = settings.credential() if settings is not None else None
        if credential is None or credential.api_key:
            return credential
        required = plugin is not None and plugin.credential is not None and plugin.credential.key_required
        return None if required else credential


class SettingsCredentials:
    """A credential store reading the plugins' settings only (no vault)."""

    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins

    async def get(self, service: str) -> Credential | None:
        """The credential ``AILAB_<SERVICE>_*`` gives, or None."""
        return self._plugins.settings_credential(service)
