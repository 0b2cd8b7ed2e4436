"""What a provider plugin declares: its name, its settings, its credential's format, what it can do.

Every backend, the built-in ones included, is one module exposing a :class:`ProviderPlugin` through the
entry-point group ``ailab.providers``. The plugin carries its own knowledge, so adding a backend touches
one module and the core names no provider:

- ``settings``: a :class:`ProviderSettings` subclass, read from ``AILAB_<NAME>_*`` (and ``.env``); the
  core ``Settings`` holds none of them (``Settings.providers`` can override them, per plugin name);
- ``credential``: the :class:`~ailab.providers.credentials.CredentialFormat` the vault validates keys
  against (None: the backend takes no key);
- ``capabilities``: what its models can do (streaming, structured output, tools, images, embeddings);
- ``factory``: builds the provider from its settings, the credential store (the vault, then its
  settings) and a :class:`ProviderContext`, which is all it sees of the core: never the master key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ailab.providers.base import CredentialStore, Provider
from ailab.providers.credentials import Credential, CredentialFormat


class ProviderSettings(BaseSettings):
    """Base of a plugin's settings; a subclass sets ``env_prefix`` (``AILAB_<NAME>_``) and its fields."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    def credential(self) -> Credential | None:
        """The credential these settings give (``api_key``, ``base_url``), or None.

        A keyless backend is configured by its base URL alone. A plugin whose credential carries more
        (an endpoint, deployments) overrides this.
        """
        api_key = getattr(self, "api_key", None)
        base_url = getattr(self, "base_url", "") or ""
        config = {"base_url": base_url} if base_url else {}
        if isinstance(api_key, SecretStr):
            return Credential(api_key=api_key.get_secret_value(), config=config)
        return Credential(api_key=None, config=config) if config else None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend's models can do (a model may do less; the backend says so when asked)."""

    stream: bool = True
    json_schema: bool = False  # structured output (``ChatRequest.response_schema``)
    tools: bool = False
    images: bool = False
    embeddings: bool = False


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What the core hands every factory: no setting of another plugin, no master key."""

    data_dir: Path  # the server's data dir (the embedded model looks for more GGUFs in data_dir/models)
    timeout_s: float  # AILAB_PROVIDER_TIMEOUT_SECONDS: an upstream call's time limit


Factory = Callable[[Any, CredentialStore, ProviderContext], Provider | None]


@dataclass(frozen=True, slots=True)
class ProviderPlugin:
    """A backend as its entry point declares it (see the module docstring)."""

    name: str  # the prefix of its model ids: "openai", "local", ...
    settings: type[ProviderSettings]
    factory: Factory
    credential: CredentialFormat | None = None
    capabilities: Capabilities = Capabilities()
    aliases: tuple[str, ...] = ()  # other names users give it ("google" for gemini)
    description: str = ""

    def load_settings(self, overrides: Mapping[str, Any] | None = None) -> ProviderSettings:
        """Its settings: ``AILAB_<NAME>_*`` from the environment and ``.env``, ``overrides`` on top."""
        return self.settings(**dict(overrides or {}))

    def create(
        self, settings: ProviderSettings, credentials: CredentialStore, context: ProviderContext
    ) -> Provider | None:
        """The provider, or None when the plugin is not configured."""
        return self.factory(settings, credentials, context)
