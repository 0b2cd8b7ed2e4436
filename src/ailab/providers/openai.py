"""OpenAI (api.openai.com or any base URL), and the base class of every OpenAI-wire backend.

:class:`OpenAIWireProvider` talks ``GET {base}/models`` and ``POST {base}/chat/completions`` with a
bearer key, streams ``data:`` chunks until ``[DONE]`` (asking for ``stream_options.include_usage`` so the
last chunk carries the token counts), and forwards raw requests for the gateway's pass-through
(:class:`~ailab.providers.base.SupportsOpenAIForward`). OpenAI-compatible servers, Hugging Face and Azure
OpenAI are the same class with another base URL, key rule or URL scheme.

Embeddings are ``POST {base}/embeddings``, at most 2048 inputs per request (OpenAI's limit) and about
300,000 characters (OpenAI counts at most 300,000 tokens per request, and a token is rarely shorter
than a character); the gateway forwards its clients' requests there as bytes
(:class:`~ailab.providers.base.SupportsEmbeddingsForward`).

Which models read images: OpenAI's own say so by their names (:func:`openai_model_sees`); behind another
base URL the server is asked nothing and the images go along, since it refuses them itself if its model
cannot see.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ailab.providers import openai_wire as wire
from ailab.providers.base import (
    ChatRequest,
    ChatResult,
    Credential,
    Embeddings,
    ModelInfo,
    UpstreamResponse,
    WholeBody,
)
from ailab.providers.credentials import BASE_URL_OPTIONAL, CredentialFormat
from ailab.providers.embeddings import EmbeddingProvider
from ailab.providers.plugin import Capabilities, ProviderPlugin, ProviderSettings
from ailab.providers.remote import Endpoint
from ailab.providers.transport import Response, ResponseBody

# OpenAI's models that read no images: GPT-3.5, the first GPT-4 and its previews, the small early
# reasoning models and the open-weight gpt-oss. Every other current family sees (gpt-4o, chatgpt-4o,
# gpt-4.1, gpt-4-turbo, gpt-5, o1, o3, o4-mini); a name not known here is assumed to, and OpenAI answers
# for it. "gpt-35" is Azure's spelling; "ft:" marks a fine-tune of the base model that follows.
_TEXT_ONLY = re.compile(
    r"^(?:gpt-3\.5|gpt-35|gpt-oss|o1-mini|o1-preview|o3-mini)"
    r"|^gpt-4(?:-\d{4}|-32k\S*|-\d{4}-preview|-turbo-preview)?$"
)


def openai_model_sees(model: str) -> bool:
    """Whether an OpenAI model reads images, by its name (see ``_TEXT_ONLY``)."""
    base = model.removeprefix("ft:").split(":", 1)[0].lower()
    return _TEXT_ONLY.match(base) is None


class OpenAIWireProvider(EmbeddingProvider):
    """A backend speaking OpenAI's chat completions and embeddings APIs."""

    max_tokens_field = "max_tokens"
    end_marker = wire.DONE
    tools = True  # OpenAI's tools; a model behind another base URL that cannot call them says so itself
    embed_batch_size = 2048
    embed_batch_chars = 300_000

    async def can_see(self, model: str) -> bool:
        """True: a server of unknown models is not second-guessed (it refuses images it cannot read)."""
        return True

    # -- where and how to call; Azure overrides these ----------------------------------------------------

    def auth_headers(self, credential: Credential) -> dict[str, str]:
        """The authentication header (none when there is no key)."""
        return {"Authorization": f"Bearer {credential.api_key}"} if credential.api_key else {}

    def chat_url(self, credential: Credential, model: str) -> str:
        """The chat completions URL for ``model``."""
        return f"{self.base_url(credential)}/chat/completions"

    def embeddings_url(self, credential: Credential, model: str) -> str:
        """The embeddings URL for ``model``."""
        return f"{self.base_url(credential)}/embeddings"

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

    def parse_result(self, data: dict[str, Any], request: ChatRequest) -> ChatResult:
        """A ``chat.completion`` object."""
        return wire.parse_chat_response(data, request.model)

    def stream_parser(self, request: ChatRequest) -> wire.StreamState:
        """A parser of ``chat.completion.chunk`` events."""
        return wire.StreamState(self.name)

    # -- embeddings: the translations EmbeddingProvider batches and sends ---------------------------------

    def embeddings_endpoint(self, credential: Credential, model: str) -> Endpoint:
        """``POST {base}/embeddings`` (Azure: the deployment's URL and api-version)."""
        return Endpoint(self.embeddings_url(credential, model), self.query(credential))

    def embeddings_body(self, model: str, inputs: list[str], dimensions: int | None) -> dict[str, Any]:
        """OpenAI's embeddings body, float vectors."""
        return wire.build_embeddings_body(model, inputs, dimensions)

    def parse_embeddings(self, data: Any, model: str) -> Embeddings:
        """An embeddings ``list`` answer."""
        return wire.parse_embeddings(data, model, self.name)

    # -- pass-through ------------------------------------------------------------------------------------

    async def forward_chat_completions(self, payload: dict[str, Any]) -> UpstreamResponse:
        """POST ``payload`` as is and hand back the upstream's status, content type and raw body.

        A non-2xx answer is raised as its :class:`ProviderError`, with a message rebuilt from the
        upstream's and every secret scrubbed (an upstream may quote the key it refused); upstream
        headers are never passed on. The body's ``aclose()`` releases the connection when it is not read
        to the end.
        """
        credential = await self.require_credential()
        url = self.chat_url(credential, str(payload.get("model", "")))
        return await self._forward(credential, url, payload, stream=bool(payload.get("stream")))

    def speaks_openai_embeddings(self, credential: Credential) -> bool:
        """Whether the upstream's embeddings are OpenAI's ``/embeddings`` (Hugging Face's router: no)."""
        return True

    async def forward_embeddings(self, payload: dict[str, Any]) -> UpstreamResponse | None:
        """POST an embeddings ``payload`` as is (see :meth:`forward_chat_completions`); None when the
        upstream's embeddings speak another wire."""
        credential = await self.require_credential()
        if not self.speaks_openai_embeddings(credential):
            return None
        url = self.embeddings_url(credential, str(payload.get("model", "")))
        return await self._forward(credential, url, payload, stream=False)

    async def _forward(
        self, credential: Credential, url: str, payload: dict[str, Any], *, stream: bool
    ) -> UpstreamResponse:
        body: AsyncIterator[bytes]
        if stream:
            response = await self._post(credential, url, payload, stream=True)
            body = ResponseBody(self.http, response, url)
        else:  # sent and read whole under one deadline, whose timer only a slow answer arms
            with self.http.deadline(url):
                response = await self._post(credential, url, payload, stream=False)
                body = WholeBody(await ResponseBody(self.http, response, url).read())
        return UpstreamResponse(
            status=response.status,
            content_type=response.headers.get("content-type", "application/json"),
            body=body,
            secret=credential.api_key,
        )

    async def _post(
        self, credential: Credential, url: str, payload: dict[str, Any], *, stream: bool
    ) -> Response:
        """POST ``payload``; a non-2xx answer raised as its ProviderError. A non-streamed one is timed by
        the caller's deadline."""
        response = await self.http.raw_post(
            url,
            headers=self.auth_headers(credential),
            params=self.query(credential),
            body=orjson.dumps(payload),
            stream=stream,
        )
        if response.status >= 300:
            raise await self.http.error_for(response, credential.api_key)
        return response


class OpenAIProvider(OpenAIWireProvider):
    """api.openai.com (or ``AILAB_OPENAI_BASE_URL``), with a bearer key."""

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    # OpenAI's reasoning models refuse max_tokens; every current model takes this one.
    max_tokens_field = "max_completion_tokens"

    async def can_see(self, model: str) -> bool:
        """Whether ``model`` reads images, by OpenAI's model names."""
        return openai_model_sees(model)


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
# OpenAI's wire: the strict json_schema response format, tools, image_url content parts, /embeddings.
WIRE_CAPABILITIES = Capabilities(json_schema=True, tools=True, images=True, embeddings=True)
PLUGIN = ProviderPlugin(
    name="openai",
    settings=OpenAISettings,
    factory=OpenAIProvider,
    credential=CREDENTIAL,
    capabilities=WIRE_CAPABILITIES,
    description="OpenAI's API (always registered: a key added at run time works at once)",
)
