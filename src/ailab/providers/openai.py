"""OpenAI (api.openai.com or any base URL), and the base class of every OpenAI-wire backend.

:class:`OpenAIWireProvider` talks ``GET {base}/models`` and ``POST {base}/chat/completions`` with a
bearer key, streams ``data:`` chunks until ``[DONE]`` (asking for ``stream_options.include_usage`` so the
last chunk carries the token counts), and forwards raw requests for the gateway's pass-through
(:class:`~ailab.providers.base.SupportsOpenAIForward`). OpenAI-compatible servers, Hugging Face and Azure
OpenAI are the same class with another base URL, key rule or URL scheme.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.providers import openai_wire as wire
from ailab.providers.base import (
    ChatRequest,
    ChatResult,
    Credential,
    ModelInfo,
    UpstreamResponse,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint, TranslatingProvider
from ailab.providers.transport import ResponseBody


class OpenAIWireProvider(TranslatingProvider):
    """A backend speaking OpenAI's chat completions API."""

    max_tokens_field = "max_tokens"
    end_marker = wire.DONE

    # -- where and how to call; Azure overrides these ----------------------------------------------------

    def auth_headers(self, credential: Credential) -> dict[str, str]:
        """The authentication header (none when there is no key)."""
        return {"Authorization": f"Bearer {credential.api_key}"} if credential.api_key else {}

    def chat_url(self, credential: Credential, model: str) -> str:
        """The chat completions URL for ``model``."""
        return f"{self.base_url(credential)}/chat/completions"

    def query(self, credential: Credential) -> Mapping[str, str] | None:
        """Query parameters every call carries (Azure's api-version)."""
        return None

    async def _fetch_models(self, credential: Credential) -> list[ModelInfo]:
        data = await self.http.json(
            "GET",
            f"{self.base_url(credential)}/models",
            headers=self.auth_headers(credential),
            params=self.query(credential),
            secret=credential.api_key,
        )
        return wire.parse_models(data if isinstance(data, dict) else {})

    # -- chat: the translations TranslatingProvider sends and streams ------------------------------------

    def headers(self, credential: Credential) -> dict[str, str]:
        """The authentication headers of a chat request."""
        return self.auth_headers(credential)

    def chat_endpoint(self, credential: Credential, request: ChatRequest, *, stream: bool) -> Endpoint:
        """``POST {base}/chat/completions`` (Azure: the deployment's URL and api-version)."""
        return Endpoint(self.chat_url(credential, request.model), self.query(credential))

    def request_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """OpenAI's chat completions body (with ``stream_options.include_usage`` when streaming)."""
        return wire.build_chat_body(request, stream=stream, max_tokens_field=self.max_tokens_field)

    def parse_result(self, data: dict[str, Any], model: str) -> ChatResult:
        """A ``chat.completion`` object."""
        return wire.parse_chat_response(data, model)

    def stream_parser(self) -> wire.StreamState:
        """A parser of ``chat.completion.chunk`` events."""
        return wire.StreamState(self.name)

    # -- pass-through ------------------------------------------------------------------------------------

    async def forward_chat_completions(self, payload: dict[str, Any]) -> UpstreamResponse:
        """POST ``payload`` as is and hand back the upstream's status, content type and raw body.

        A non-2xx answer is raised as its :class:`ProviderError`, with a message rebuilt from the
        upstream's and every secret scrubbed (an upstream may quote the key it refused); upstream
        headers are never passed on. The body's ``aclose()`` releases the connection when it is not read
        to the end.
        """
        credential = await self.require_credential()
        response = await self.http.send(
            "POST",
            self.chat_url(credential, str(payload.get("model", ""))),
            headers=self.auth_headers(credential),
            params=self.query(credential),
            body=orjson.dumps(payload),
            stream=bool(payload.get("stream")),
        )
        if response.status >= 300:
            raise await self.http.error_for(response, credential.api_key)
        return UpstreamResponse(
            status=response.status,
            content_type=response.headers.get("Content-Type", "application/json"),
            body=ResponseBody(self.http, response),
            secret=credential.api_key,
        )


class OpenAIProvider(OpenAIWireProvider):
    """api.openai.com (or ``AILAB_OPENAI_BASE_URL``), with a bearer key."""

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    # OpenAI's reasoning models refuse max_tokens; every current model takes this one.
    max_tokens_field = "max_completion_tokens"


class OpenAISettings(ProviderSettings):
    """``AILAB_OPENAI_*``: the key and, to use a proxy or a mirror, another base URL."""

    model_config = SettingsConfigDict(env_prefix="AILAB_OPENAI_")

    base_url: str = ""  # empty: https://api.openai.com/v1
    api_key: SecretStr | None = None


CREDENTIAL = CredentialFormat(
    re.compile(r"^sk-[A-Za-z0-9_-]{20,}$"),
    "an OpenAI key: 'sk-' (or 'sk-proj-') followed by at least 20 letters, digits, '-' or '_'",
    config=BASE_URL_OPTIONAL,
    mistakes=((re.compile(r"^sk-ant-"), "this looks like an Anthropic key; store it as 'anthropic'"),),
)
WIRE_CAPABILITIES = Capabilities(json_schema=True)  # OpenAI's wire: strict json_schema response format
PLUGIN = ProviderPlugin(
    name="openai",
    settings=OpenAISettings,
    factory=OpenAIProvider,
    credential=CREDENTIAL,
    capabilities=WIRE_CAPABILITIES,
    description="OpenAI's API (always registered: a key added at run time works at once)",
)
