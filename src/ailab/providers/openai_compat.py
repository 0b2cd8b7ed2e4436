"""Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, ...) at a base URL of your choice.

The base URL comes from the credential's ``config["base_url"]`` (``ai-lab keys set openai-compat``) or
``AILAB_OPENAI_COMPAT_BASE_URL``, e.g. ``http://127.0.0.1:8000/v1``; the key is optional. The provider is
always registered because the vault's base URL can only be read per request (factories are synchronous):
without any base URL it lists no models, makes no network call, and a chat says how to configure it.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.errors import ProviderUnavailable
from ailab.providers.base import Credential, ModelInfo, ProviderHealth
from ailab.providers.credentials import BASE_URL_REQUIRED, CredentialFormat
from ailab.providers.openai import WIRE_CAPABILITIES, OpenAIWireProvider
from ailab.providers.plugin import ProviderPlugin, ProviderSettings


class OpenAICompatProvider(OpenAIWireProvider):
    """An OpenAI-compatible server; a bearer key is sent only when one is set."""

    name = "openai-compat"
    key_required = False

    def not_configured(self) -> ProviderUnavailable:
        """The error for a request while no base URL is configured."""
        return ProviderUnavailable(
            "openai-compat has no base URL: set AILAB_OPENAI_COMPAT_BASE_URL (e.g. http://127.0.0.1:8000/v1) "
            "or store one with `ai-lab keys set openai-compat`"
        )

    async def require_credential(self) -> Credential:
        """The (possibly keyless) credential, or ProviderUnavailable when no base URL is configured."""
        credential = await super().require_credential()
        if not self.base_url(credential):
            raise self.not_configured()
        return credential

    async def list_models(self) -> list[ModelInfo]:
        """The server's models; [] without a network call while no base URL is configured."""
        if not self.base_url(await self.credential()):
            return []
        return await super().list_models()

    async def health(self) -> ProviderHealth:
        """Not ok while unconfigured; otherwise a model listing (errors raised as for the others)."""
        if not self.base_url(await self.credential()):
            return ProviderHealth(ok=False, detail=self.not_configured().message)
        return await super().health()


class OpenAICompatSettings(ProviderSettings):
    """``AILAB_OPENAI_COMPAT_*``: any OpenAI-compatible server; the key is optional."""

    model_config = SettingsConfigDict(env_prefix="AILAB_OPENAI_COMPAT_")

    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1
    api_key: SecretStr | None = None


PLUGIN = ProviderPlugin(
    name="openai-compat",
    settings=OpenAICompatSettings,
    factory=OpenAICompatProvider,
    credential=CredentialFormat(
        None,
        "an optional key (printable, no spaces) with config base_url, e.g. http://127.0.0.1:8000/v1",
        key_required=False,
        config=BASE_URL_REQUIRED,
    ),
    capabilities=WIRE_CAPABILITIES,
    aliases=("openai_compat",),
    description="Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, ...)",
)
