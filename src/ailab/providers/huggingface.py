"""Hugging Face: the Inference Providers router or a TGI server, through the OpenAI-compatible Messages API.

Defaults to ``https://router.huggingface.co/v1`` with ``Authorization: Bearer hf_...``; point
``AILAB_HUGGINGFACE_BASE_URL`` (or the credential's ``base_url``) at a TGI endpoint's ``.../v1`` to use
your own. Model ids are the Hub's, e.g. ``huggingface/meta-llama/Llama-3.1-8B-Instruct``.
"""

from __future__ import annotations

from ailab.config import Settings
from ailab.providers.base import CredentialStore
from ailab.providers.openai import OpenAIWireProvider


class HuggingFaceProvider(OpenAIWireProvider):
    """Hugging Face's OpenAI-compatible chat completions with a bearer token."""

    name = "huggingface"
    default_base_url = "https://router.huggingface.co/v1"


def create(settings: Settings, credentials: CredentialStore) -> HuggingFaceProvider:
    """The ``huggingface`` entry point: always registered, so a token added at run time works at once."""
    return HuggingFaceProvider(settings, credentials)
