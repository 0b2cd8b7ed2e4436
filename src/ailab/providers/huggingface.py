"""Hugging Face: the Inference Providers router or a TGI server, through the OpenAI-compatible Messages API.

Defaults to ``https://router.huggingface.co/v1`` with ``Authorization: Bearer hf_...``; point
``AILAB_HUGGINGFACE_BASE_URL`` (or the credential's ``base_url``) at a TGI endpoint's ``.../v1`` to use
your own. Model ids are the Hub's, e.g. ``huggingface/meta-llama/Llama-3.1-8B-Instruct``.
"""

from __future__ import annotations

import re

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.openai import WIRE_CAPABILITIES, OpenAIWireProvider
from ailab.providers.plugin import ProviderPlugin, ProviderSettings


class HuggingFaceProvider(OpenAIWireProvider):
    """Hugging Face's OpenAI-compatible chat completions with a bearer token."""

    name = "huggingface"
    default_base_url = "https://router.huggingface.co/v1"


class HuggingFaceSettings(ProviderSettings):
    """``AILAB_HUGGINGFACE_*``."""

    model_config = SettingsConfigDict(env_prefix="AILAB_HUGGINGFACE_")

    base_url: str = ""  # empty: https://router.huggingface.co/v1
    api_key: SecretStr | None = None


PLUGIN = ProviderPlugin(
    name="huggingface",
    settings=HuggingFaceSettings,
    factory=HuggingFaceProvider,
    credential=CredentialFormat(
        re.compile(r"^hf_[A-Za-z0-9]{30,}$"),
        "a Hugging Face token: 'hf_' followed by at least 30 letters and digits",
        config=BASE_URL_OPTIONAL,
    ),
    capabilities=WIRE_CAPABILITIES,
    aliases=("hugging-face", "hf"),
    description="Hugging Face's router or a TGI server (OpenAI's wire)",
)
