"""Hugging Face: the Inference Providers router or a TGI server, through the OpenAI-compatible Messages API.

Defaults to ``https://router.huggingface.co/v1`` with ``Authorization: Bearer hf_...``; point
``AILAB_HUGGINGFACE_BASE_URL`` (or the credential's ``base_url``) at a TGI endpoint's ``.../v1`` to use
your own. Model ids are the Hub's, e.g. ``huggingface/meta-llama/Llama-3.1-8B-Instruct``.

Embeddings: the router's ``/v1`` speaks OpenAI's wire for chat only; its embeddings are the
``hf-inference`` feature-extraction pipeline, ``POST {router}/hf-inference/models/{model}/pipeline/
feature-extraction`` with ``{"inputs": [...]}``, answering one vector per text (for a sentence-embedding
model) and no token counts. Any other base URL is taken for a server of your own (TEI behind an Inference
Endpoint, say), whose ``/v1/embeddings`` is OpenAI's. Either way at most 32 texts go in one request:
TEI's default ``max_client_batch_size``, and what hf-inference (TEI-backed) takes.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.errors import InvalidInput, ModelNotFound, ProviderRejected
from ailab.providers.base import Credential, Embeddings
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.embeddings import vectors
from ailab.providers.openai import WIRE_CAPABILITIES, OpenAIWireProvider
from ailab.providers.plugin import ProviderPlugin, ProviderSettings

ROUTER_HOST = "router.huggingface.co"
# A Hub repo id, ``name`` or ``owner/name``: no segment starts with a dot, so ``..`` cannot climb the path.
_REPO_ID = re.compile(r"^(?!\.)[\w.-]{1,96}(?:/(?!\.)[\w.-]{1,96})?$")


def uses_router(base_url: str) -> bool:
    """Whether ``base_url`` is Hugging Face's router (whose embeddings are the feature-extraction task)."""
    return urlsplit(base_url).hostname == ROUTER_HOST


def feature_extraction_url(base_url: str, model: str) -> str:
    """The router's feature-extraction URL for ``model``; ModelNotFound for a name that is no repo id."""
    if not _REPO_ID.match(model):
        raise ModelNotFound(f"'huggingface/{model}' is not a Hub model id (owner/name)")
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/hf-inference/models/{model}/pipeline/feature-extraction"


def build_feature_extraction_body(inputs: list[str]) -> dict[str, Any]:
    """The JSON body of a feature-extraction request."""
    return {"inputs": inputs}


def parse_feature_extraction(data: Any, model: str) -> Embeddings:
    """A feature-extraction answer (one vector per text) as :class:`Embeddings` (no usage: none is said).

    A model that is not a sentence-embedding one answers a vector per token instead: that is refused,
    naming the model, rather than pooled here in a way the model was not trained for.
    """
    first = data[0] if isinstance(data, list) and data else None
    if isinstance(first, list) and first and isinstance(first[0], list):
        raise ProviderRejected(
            f"huggingface: '{model}' answers a vector per token, not per text; "
            "choose a sentence-embedding model (sentence-transformers/..., BAAI/bge-..., intfloat/e5-...)"
        )
    return Embeddings(vectors=vectors("huggingface", data), model=model)


class HuggingFaceProvider(OpenAIWireProvider):
    """Hugging Face's OpenAI-compatible chat completions with a bearer token, and its embeddings."""

    name = "huggingface"
    default_base_url = "https://router.huggingface.co/v1"
    embed_batch_size = 32

    async def embed_batch(
        self, credential: Credential, model: str, inputs: list[str], dimensions: int | None
    ) -> Embeddings:
        """The router's feature extraction, or a server's OpenAI ``/embeddings``."""
        if self.speaks_openai_embeddings(credential):
            return await super().embed_batch(credential, model, inputs, dimensions)
        if dimensions is not None:
            raise InvalidInput(
                "huggingface's router makes embeddings of the model's own size: 'dimensions' is not supported"
            )
        data = await self.http.json(
            "POST",
            feature_extraction_url(self.base_url(credential), model),
            headers=self.auth_headers(credential),
            body=build_feature_extraction_body(inputs),
            secret=credential.api_key,
        )
        return parse_feature_extraction(data, model)

    def speaks_openai_embeddings(self, credential: Credential) -> bool:
        """A server of your own does; the router does not (the gateway translates its answers)."""
        return not uses_router(self.base_url(credential))


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
