"""The common base of the remote backends.

:class:`RemoteProvider` looks the credential up per request (so a key set at run time works at once) and
says how to set one when it is missing; :class:`TranslatingProvider` adds the translation of AI-Lab's
chat requests to a backend's own wire format and back (its :class:`Endpoint` and :class:`StreamParser`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ailab.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
)
from ailab.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    Credential,
    CredentialStore,
    ModelInfo,
    ProviderHealth,
    check_can_see,
    check_can_use_tools,
    has_images,
    uses_tools,
)
from ailab.providers.plugin import ProviderContext, ProviderSettings
from ailab.providers.transport import HttpClient, Response
from ailab.providers.upstream_errors import load_event, scrub


class RemoteProvider:
    """Common base of the remote backends: credentials per request, the session, health from a listing.

    Subclasses set ``name`` and implement ``_fetch_models(credential)`` (a real, cheap, authenticated
    call), ``chat`` and ``stream``. ``key_required = False`` for backends that work without a key.
    """

    name: str = ""
    key_required: bool = True
    default_base_url: str = ""

    def __init__(
        self,
        settings: ProviderSettings,
        credentials: CredentialStore,
        context: ProviderContext,
        *,
        name: str | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        self.settings = settings
        self.credentials = credentials
        self.http = HttpClient(self.name, context.timeout_s, error_hook=self._error_hook)

    # -- credentials -------------------------------------------------------------------------------

    @property
    def env_prefix(self) -> str:
        """``AILAB_<PROVIDER>``: the prefix of this provider's settings."""
        return f"AILAB_{self.name.upper().replace('-', '_')}"

    def missing_key(self) -> ProviderAuthError:
        """The error for a request without a key, saying how to set one."""
        return ProviderAuthError(
            f"no API key for {self.name}: set one with `ai-lab keys set {self.name}` "
            f"or the {self.env_prefix}_API_KEY setting"
        )

    async def credential(self) -> Credential | None:
        """The current credential (vault first, then settings); an empty key counts as none."""
        found = await self.credentials.get(self.name)
        if found is None:
            return None
        if not found.api_key:
            return Credential(api_key=None, config=found.config)
        return found

    async def require_credential(self) -> Credential:
        """The credential, or ProviderAuthError when a key is needed and none is set."""
        found = await self.credential()
        if found is None:
            if self.key_required:
                raise self.missing_key()
            return Credential(api_key=None)
        if self.key_required and not found.api_key:
            raise self.missing_key()
        return found

    def base_url(self, credential: Credential | None) -> str:
        """``config["base_url"]`` of the credential, else the ``AILAB_<PROVIDER>_BASE_URL`` setting."""
        configured = credential.config.get("base_url") if credential else None
        setting = getattr(self.settings, "base_url", "")
        return str(configured or setting or self.default_base_url).rstrip("/")

    # -- models and health ---------------------------------------------------------------------------

    async def _fetch_models(self, credential: Credential) -> list[ModelInfo]:
        raise NotImplementedError

    async def list_models(self) -> list[ModelInfo]:
        """The upstream's models; [] at once without a key; ProviderAuthError when the key is refused."""
        try:
            credential = await self.require_credential()
        except ProviderAuthError:
            return []
        return await self._fetch_models(credential)

    async def health(self) -> ProviderHealth:
        """An authenticated model listing: ok with the count; not ok when no key is set.

        A refused key raises ProviderAuthError, an unreachable upstream ProviderUnavailable or
        ProviderTimeout, so a key test can tell "invalid" from "unreachable".
        """
        try:
            credential = await self.require_credential()
        except ProviderAuthError as exc:
            return ProviderHealth(ok=False, detail=exc.message)
        models = await self._fetch_models(credential)
        return ProviderHealth(ok=True, detail=f"{len(models)} models available")

    def _error_hook(self, status: int, body: bytes, message: str) -> ProviderError | None:
        """Override to read a provider-specific error answer; None keeps the generic mapping."""
        return None

    async def aclose(self) -> None:
        """Close the pooled session."""
        await self.http.aclose()


class StreamParser(Protocol):
    """Turns a backend's streamed JSON events into chunks; ``done`` once its end event arrived."""

    done: bool

    def feed(self, event: dict[str, Any]) -> ChatChunk | None:
        """The chunk an event carries, or None; an error event is raised."""
        ...

    def final(self) -> ChatChunk:
        """The last chunk: finish reason and usage."""
        ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a chat request goes."""

    url: str
    params: Mapping[str, str] | None = None


class TranslatingProvider(RemoteProvider):
    """A remote chat backend: OpenAI's wire format or one of its own (Anthropic, Gemini, Cohere, Ollama).

    Subclasses say where a chat goes and hand over the pure translations; sending, streaming (SSE or
    NDJSON), stopping on the end event or end marker, and the error mapping (with the key scrubbed from
    any message) are done here, once. Images for a model that cannot see them are refused here too, before
    anything is sent, whichever service asked (a subclass declares its models' sight with ``can_see``;
    without it, it shows none), and so are tools where the subclass does not declare ``tools = True``
    (or a ``can_use_tools`` of its own). What the wire cannot carry, its pure ``request_body`` refuses
    (:class:`~ailab.errors.InvalidInput`); :meth:`check_request` asks it without sending anything.
    """

    stream_format: str = "sse"  # or "ndjson"
    end_marker: str | None = None  # a stream's last data line that is not JSON (OpenAI's ``[DONE]``)
    tools: bool = False  # whether the backend's wire carries tools (a subclass that translates them says so)

    async def can_use_tools(self, model: str) -> bool:
        """Whether ``model`` calls tools: the backend's ``tools``, unless a subclass knows better."""
        return self.tools

    def check_request(self, request: ChatRequest) -> None:
        """Refuse what the wire cannot carry in ``request``: the body is built, and nothing is sent.

        Only what a wire may refuse makes it worth building twice (tools, response formats, the extra
        settings); a plain conversation, its images included, is carried by every one.
        """
        if uses_tools(request) or request.response_schema or request.json_object or request.extra:
            self.request_body(request, stream=True)

    def headers(self, credential: Credential) -> dict[str, str]:
        """The authentication headers of a request."""
        raise NotImplementedError

    def chat_endpoint(self, credential: Credential, request: ChatRequest, *, stream: bool) -> Endpoint:
        """The URL (and query) of a chat request."""
        raise NotImplementedError

    def request_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body of a chat request."""
        raise NotImplementedError

    def parse_result(self, data: dict[str, Any], request: ChatRequest) -> ChatResult:
        """A whole answer to ``request`` from the backend's JSON."""
        raise NotImplementedError

    def stream_parser(self, request: ChatRequest) -> StreamParser:
        """A fresh parser for one streamed answer to ``request``."""
        raise NotImplementedError

    async def _refuse_what_cannot_be_done(self, request: ChatRequest) -> None:
        if has_images(request):
            await check_can_see(self, request.model)
        if uses_tools(request):
            await check_can_use_tools(self, request.model)

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One whole answer."""
        await self._refuse_what_cannot_be_done(request)
        credential = await self.require_credential()
        endpoint = self.chat_endpoint(credential, request, stream=False)
        data = await self.http.json(
            "POST",
            endpoint.url,
            headers=self.headers(credential),
            params=endpoint.params,
            body=self.request_body(request, stream=False),
            secret=credential.api_key,
        )
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{self.name} answered with an unexpected JSON shape")
        return self.parse_result(data, request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The answer chunk by chunk; the last chunk has the finish reason and the usage."""
        await self._refuse_what_cannot_be_done(request)
        credential = await self.require_credential()
        endpoint = self.chat_endpoint(credential, request, stream=True)
        parser = self.stream_parser(request)
        async with self.http.open(
            "POST",
            endpoint.url,
            headers=self.headers(credential),
            params=endpoint.params,
            body=self.request_body(request, stream=True),
            stream=True,
            secret=credential.api_key,
        ) as response:
            events = 0
            async for raw in self._events(response):
                events += 1
                if raw == self.end_marker:
                    break
                try:
                    chunk = parser.feed(load_event(self.name, raw))
                except ProviderError as exc:  # an error event may quote what we sent, key included
                    exc.message = scrub(exc.message, credential.api_key)
                    exc.args = (exc.message,)
                    raise
                if chunk is not None:
                    yield chunk
                if parser.done:
                    break
            if events == 0:  # a 200 with no event at all: an HTML page from a proxy, a wrong URL...
                kind = response.headers.get("content-type", "no content type")
                raise ProviderUnavailable(f"{self.name} answered with an invalid stream (no events; {kind})")
        yield parser.final()

    async def _events(self, response: Response) -> AsyncIterator[str | bytes]:
        if self.stream_format == "ndjson":
            async for line in self.http.lines(response):
                yield line
        else:
            async for event in self.http.sse(response):
                yield event.data
