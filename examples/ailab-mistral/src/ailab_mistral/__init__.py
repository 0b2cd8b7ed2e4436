"""Mistral AI's API (``https://api.mistral.ai/v1``) as an AI-Lab model backend.

A third-party provider plugin, complete: AI-Lab's own code names nothing here. Installed next to AI-Lab
(``pip install ./examples/ailab-mistral``), it gives

- models ``mistral/<name>`` in ``/chat``, ``/v1/chat/completions`` and ``/v1/models``;
- its settings, ``AILAB_MISTRAL_API_KEY`` and ``AILAB_MISTRAL_BASE_URL`` (read by the class below);
- keys in the vault: ``ai-lab keys set mistral``, validated against :data:`CREDENTIAL` and tried by
  ``ai-lab keys test mistral`` (which lists the models with the key).

Mistral speaks OpenAI's chat completions wire, so the provider is AI-Lab's OpenAI-wire provider with
another name and base URL; a backend with its own wire subclasses ``TranslatingProvider`` instead.
"""

from __future__ import annotations

import re

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.openai import OpenAIWireProvider
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings


class MistralProvider(OpenAIWireProvider):
    """Mistral's chat completions, with ``Authorization: Bearer <key>``."""

    name = "mistral"
    default_base_url = "https://api.mistral.ai/v1"


class MistralSettings(ProviderSettings):
    """``AILAB_MISTRAL_*``: the key, and another base URL for a proxy or a self-hosted gateway."""

    model_config = SettingsConfigDict(env_prefix="AILAB_MISTRAL_")

    base_url: str = ""  # empty: https://api.mistral.ai/v1
    api_key: SecretStr | None = None


CREDENTIAL = CredentialFormat(
    re.compile(r"^[A-Za-z0-9]{32}$"),
    "a Mistral API key: 32 letters and digits",
    config=BASE_URL_OPTIONAL,
)

PLUGIN = ProviderPlugin(
    name="mistral",
    settings=MistralSettings,
    factory=MistralProvider,
    credential=CREDENTIAL,
    capabilities=Capabilities(json_schema=True),
    description="Mistral AI's API",
)
