"""Azure OpenAI: OpenAI's wire format at per-deployment URLs, with an ``api-key`` header.

Chat goes to ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`` and
embeddings to ``.../deployments/{deployment}/embeddings?api-version=...``; the model name of a request is
the deployment name (an embedding model's deployment too), and the models listed are the configured
deployments. Where they come from, first found wins:

- endpoint: the credential's ``config["endpoint"]`` (or ``base_url``), else ``AILAB_AZURE_BASE_URL``
- deployments: ``config["deployment"]`` (comma-separated allowed), else ``AILAB_AZURE_DEPLOYMENTS``
- api version: ``config["api_version"]``, else ``AILAB_AZURE_API_VERSION``

Whether a deployment reads images is read from its name with OpenAI's rules (``gpt-35-turbo`` does
not; a name that says nothing, ``prod``, is assumed to, and Azure refuses the images if its model cannot
see): Azure names the model behind a deployment only to its management API, which takes another
credential.

Listing the models makes one cheap authenticated call (``GET {endpoint}/openai/models``) so a refused
key or an unreachable endpoint shows up there, as for every other provider.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from ailab.errors import ModelNotFound, ProviderUnavailable
from ailab.providers.base import Credential, ModelInfo, ProviderHealth
from ailab.providers.credentials import ConfigField, CredentialFormat
from ailab.providers.openai import WIRE_CAPABILITIES, OpenAIWireProvider, openai_model_sees
from ailab.providers.plugin import ProviderPlugin, ProviderSettings


def deployments(credential: Credential | None, settings: AzureSettings) -> list[str]:
    """The configured deployment names."""
    configured = credential.config.get("deployment", "") if credential else ""
    names = [part.strip() for part in configured.split(",") if part.strip()]
    return names or list(settings.deployments)


class AzureOpenAIProvider(OpenAIWireProvider):
    """Azure OpenAI deployments."""

    name = "azure"
    settings: AzureSettings

    def base_url(self, credential: Credential | None) -> str:
        """The resource endpoint, ``https://<resource>.openai.azure.com``."""
        config = credential.config if credential else {}
        endpoint = config.get("endpoint") or config.get("base_url") or self.settings.base_url
        return str(endpoint or "").rstrip("/")

    async def can_see(self, model: str) -> bool:
        """Whether the deployment ``model`` reads images, by its name (see the module docstring)."""
        return openai_model_sees(model)

    def auth_headers(self, credential: Credential) -> dict[str, str]:
        """Azure's ``api-key`` header."""
        return {"api-key": credential.api_key or ""}

    def query(self, credential: Credential) -> Mapping[str, str]:
        """The ``api-version`` every Azure call needs."""
        return {"api-version": credential.config.get("api_version") or self.settings.api_version}

    def chat_url(self, credential: Credential, model: str) -> str:
        """The deployment's chat completions URL (``model`` is the deployment name)."""
        return self.deployment_url(credential, model, "chat/completions")

    def embeddings_url(self, credential: Credential, model: str) -> str:
        """The deployment's embeddings URL (``model`` is the deployment name)."""
        return self.deployment_url(credential, model, "embeddings")

    def deployment_url(self, credential: Credential, model: str, operation: str) -> str:
        """``{endpoint}/openai/deployments/{model}/{operation}`` for a configured deployment ``model``.

        Only a configured deployment is accepted, and its name is quoted as one path segment: the model
        name comes from the caller, and ``../../v1/files?x=`` must not reach another path of the resource
        with the ``api-key`` header.
        """
        known = deployments(credential, self.settings)
        if model not in known:
            raise ModelNotFound(
                f"unknown deployment 'azure/{model}': the configured deployments are "
                f"{', '.join(f'azure/{name}' for name in known) or 'none'} "
                "(AILAB_AZURE_DEPLOYMENTS, or the key's deployment setting)"
            )
        return f"{self.base_url(credential)}/openai/deployments/{quote(model, safe='')}/{operation}"

    def not_configured(self) -> ProviderUnavailable:
        """The error while no endpoint is configured."""
        return ProviderUnavailable(
            "azure has no endpoint: set AILAB_AZURE_BASE_URL=https://<resource>.openai.azure.com "
            "or store it with `ai-lab keys set azure` (config endpoint, deployment)"
        )

    async def require_credential(self) -> Credential:
        """The credential, or an error saying what is missing (key or endpoint)."""
        credential = await super().require_credential()
        if not self.base_url(credential):
            raise self.not_configured()
        return credential

    async def _fetch_models(self, credential: Credential) -> list[ModelInfo]:
        # The call checks the key and the endpoint; the answer (the resource's base models) is not
        # what requests name, the deployments are.
        await self.http.json(
            "GET",
            f"{self.base_url(credential)}/openai/models",
            headers=self.auth_headers(credential),
            params=self.query(credential),
            secret=credential.api_key,
        )
        return [ModelInfo(id=name, owned_by="azure") for name in deployments(credential, self.settings)]

    async def list_models(self) -> list[ModelInfo]:
        """The deployments, after an authenticated call; [] without key or endpoint."""
        credential = await self.credential()
        if credential is None or not credential.api_key or not self.base_url(credential):
            return []
        return await self._fetch_models(credential)

    async def health(self) -> ProviderHealth:
        """Not ok without endpoint or key; otherwise an authenticated call (errors raised)."""
        credential = await self.credential()
        if credential is None or not credential.api_key:
            return ProviderHealth(ok=False, detail=self.missing_key().message)
        if not self.base_url(credential):
            return ProviderHealth(ok=False, detail=self.not_configured().message)
        return await super().health()


class AzureSettings(ProviderSettings):
    """``AILAB_AZURE_*``: the resource's endpoint (``BASE_URL``), key, API version and deployments."""

    model_config = SettingsConfigDict(env_prefix="AILAB_AZURE_")

    base_url: str = ""  # https://<resource>.openai.azure.com
    api_key: SecretStr | None = None
    api_version: str = "2024-10-21"
    deployments: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("deployments", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def credential(self) -> Credential | None:
        """The key, with the endpoint, API version and deployments as the credential's config."""
        config = {"api_version": self.api_version}
        if self.base_url:
            config["endpoint"] = self.base_url
        if self.deployments:
            config["deployment"] = ",".join(self.deployments)
        if self.api_key is None:
            return None
        return Credential(api_key=self.api_key.get_secret_value(), config=config)


_ENDPOINT = re.compile(r"^https://[a-z0-9][a-z0-9-]{0,62}\.openai\.azure\.com/?$", re.IGNORECASE)
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def _endpoint(value: str) -> str | None:
    if _ENDPOINT.match(value):
        return None
    return "must be your resource's endpoint, https://<resource-name>.openai.azure.com"


def _deployment(value: str) -> str | None:
    if all(_DEPLOYMENT.match(part.strip()) for part in value.split(",")):
        return None
    return (
        "must be a deployment name (letters, digits, '.', '_', '-'; at most 64 characters), "
        "or several separated by commas"
    )


def _api_version(value: str) -> str | None:
    return None if _API_VERSION.match(value) else "must look like 2024-10-21 or 2024-10-01-preview"


PLUGIN = ProviderPlugin(
    name="azure",
    settings=AzureSettings,
    factory=AzureOpenAIProvider,
    credential=CredentialFormat(
        re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9A-Za-z]{84})$"),
        "an Azure OpenAI key: 32 hexadecimal characters or 84 letters and digits",
        config={
            "endpoint": ConfigField(
                _endpoint, required=True, help="https://<resource>.openai.azure.com", url=True
            ),
            "deployment": ConfigField(
                _deployment, required=True, help="the deployment name(s), comma-separated"
            ),
            "api_version": ConfigField(_api_version, help="the API version, e.g. 2024-10-21"),
        },
    ),
    capabilities=WIRE_CAPABILITIES,
    description="Azure OpenAI deployments",
)
