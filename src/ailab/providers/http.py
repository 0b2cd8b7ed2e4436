"""Shared HTTP plumbing of the remote providers: one pooled aiohttp session each, error mapping, SSE.

Sessions. Every remote provider owns one :class:`HttpClient`, which creates its ``aiohttp.ClientSession``
lazily, inside the running event loop, on first use (a session cannot be built at import time nor shared
between loops). The pooled connector keeps connections to the upstream alive between requests, which is
what makes the gateway's pass-through fast. Timeouts come from ``provider_timeout_seconds``: the connect
phase gets a short one of its own (an unreachable host should fail in seconds, not minutes); a streamed
answer may last long but each read must arrive within the timeout; a whole non-streamed answer must too.

Errors. Whatever goes wrong becomes one of the :class:`~ailab.errors.ProviderError` subclasses::

    401 / 403                         -> ProviderAuthError    (the key was refused)
    404                               -> ModelNotFound
    400 / 413 / 422                   -> ProviderRejected     (the request itself: too long, invalid)
    429                               -> ProviderRateLimited  (retry_after from the Retry-After header)
    5xx, connection refused, DNS, EOF -> ProviderUnavailable
    no answer in time                 -> ProviderTimeout
    any other 4xx                     -> ProviderError        (the upstream's message)

Only the upstream's own error message is passed on (never its headers or its body as it came), with
secrets scrubbed from it: the key we sent (upstreams quote the key they refused) and anything shaped
like a provider key (:func:`scrub`).

Redirects. No upstream call follows one: a 3xx is a ProviderUnavailable naming where it pointed (only
its origin). Following it would send the key headers and the prompt to that place.

Proxies. Upstream calls honour ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` (either case), looked up
once per upstream origin: aiohttp's own ``trust_env`` looks them up, and ``~/.netrc`` in a thread, on
every request, which costs more than the gateway's whole budget.

:class:`RemoteProvider` is the common base of the remote backends: it looks the credential up per request
(so a key set at run time works at once) and says how to set one when it is missing.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from ailab.errors import (
    ModelNotFound,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
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
)
from ailab.providers.plugin import ProviderContext, ProviderSettings

CONNECT_TIMEOUT_S = 10.0
POOL_LIMIT = 256
MAX_ERROR_TEXT = 500

# A provider-specific reading of an error answer (status, body) that the generic mapping would get wrong,
# e.g. Gemini answering 400 for an invalid key. None: use the generic mapping.
ErrorHook = Callable[[int, bytes, str], ProviderError | None]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One Server-Sent Event: its ``event:`` name ("message" when absent) and joined ``data:`` lines."""

    event: str
    data: str


class SSEDecoder:
    """Incremental ``text/event-stream`` parser: feed it bytes as they come, get whole events back.

    Follows the WHATWG rules the upstreams rely on: lines end with LF or CRLF, a blank line ends an event,
    ``:`` starts a comment, several ``data:`` lines are joined with newlines.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        events: list[SSEEvent] = []
        for raw in lines:
            self._line(raw.rstrip(b"\r").decode("utf-8", errors="replace"), events)
        return events

    def flush(self) -> list[SSEEvent]:
        """At the end of the stream: the last event, even without its closing blank line."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r").decode("utf-8", errors="replace"), events)
            self._buffer = b""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or "message", "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


class LineDecoder:
    """Incremental newline-delimited JSON splitter (Ollama's streaming format): non-empty lines out."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete lines in what has arrived so far."""
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        return [line for line in (raw.strip() for raw in lines) if line]

    def flush(self) -> list[bytes]:
        """The last line when the stream ended without a newline."""
        rest, self._buffer = self._buffer.strip(), b""
        return [rest] if rest else []


def error_message(body: bytes) -> str:
    """The upstream's own message from the usual JSON error shapes, else a short excerpt of the text.

    Shapes: ``{"error": {"message"}}`` (OpenAI, Anthropic, Gemini, Azure), ``{"error": "..."}`` (Ollama,
    Hugging Face), ``{"message": "..."}`` (Cohere), ``{"detail": ...}``.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return text[:MAX_ERROR_TEXT] or "no detail given"
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code")
        elif isinstance(error, str):
            message = error
        message = message or data.get("message") or data.get("detail")
    if message is None:
        message = body.decode("utf-8", errors="replace")
    return str(message).strip()[:MAX_ERROR_TEXT] or "no detail given"


def load_event(provider: str, text: str | bytes) -> dict[str, Any]:
    """One streamed JSON object (an SSE ``data:`` or an NDJSON line); ProviderUnavailable if garbled."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProviderUnavailable(f"{provider} sent an invalid stream event") from exc
    return data if isinstance(data, dict) else {}


# Provider key shapes (OpenAI, Anthropic, Hugging Face, Google, AI-Lab's own tokens...), to mask one an
# upstream quotes in another form than we sent it (trimmed, or a key of another request).
_KEY_SHAPES = re.compile(
    r"\b(?:sk|sk-ant|sk-proj|sk-svcacct|hf|AIza|ailab|gsk|xai|pplx)[-_][A-Za-z0-9_\-]{12,}"
)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` and anything shaped like a provider key masked (upstreams echo keys)."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return _KEY_SHAPES.sub("***", text)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(provider: str, status: int, message: str, retry_after: str | None = None) -> ProviderError:
    """The :class:`ProviderError` for an upstream's non-2xx answer (see the table in the module doc)."""
    if status in (401, 403):
        env = f"AILAB_{provider.upper().replace('-', '_')}_API_KEY"
        return ProviderAuthError(
            f"{provider} refused the credentials ({status}: {message}); "
            f"set a valid key with `ai-lab keys set {provider}` or {env}"
        )
    if status == 404:
        return ModelNotFound(f"{provider}: not found ({message})")
    if status in (400, 413, 422):
        return ProviderRejected(f"{provider} rejected the request ({status}): {message}")
    if status == 429:
        return ProviderRateLimited(
            f"{provider} is rate limiting requests: {message}", retry_after_seconds(retry_after)
        )
    if status >= 500:
        return ProviderUnavailable(f"{provider} upstream error {status}: {message}")
    return ProviderError(f"{provider} rejected the request ({status}): {message}")


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: enough to say where, never a path, query or user info."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an invalid URL"
    return f"{parts.scheme}://{parts.hostname}{port}"


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP(S)_PROXY`` unless ``NO_PROXY`` exempts it)."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme)
    if proxy is None or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    return proxy


class HttpClient:
    """One provider's pooled aiohttp session, created lazily in the running loop, with error mapping."""

    def __init__(self, provider: str, timeout_s: float, *, error_hook: ErrorHook | None = None) -> None:
        self.provider = provider
        self.timeout_s = timeout_s
        self._connect_s = min(CONNECT_TIMEOUT_S, timeout_s)
        self._error_hook = error_hook
        # A whole non-streamed answer must arrive within the timeout, not just each read of it.
        self._whole = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=self._connect_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies: dict[str, str | None] = {}  # by upstream origin

    def session(self) -> aiohttp.ClientSession:
        """The session of the running loop, created on first use."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_LIMIT, ttl_dns_cache=300),
                # Streams may last long; each read must still come within the timeout.
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._connect_s, sock_read=self.timeout_s
                ),
                raise_for_status=False,
            )
            self._loop = loop
        return self._session

    def proxy_for(self, url: str) -> str | None:
        """The proxy for ``url`` from the environment (looked up once per origin), or None."""
        key = url[: url.find("/", url.find("//") + 2)] if "//" in url else url
        if key not in self._proxies:
            self._proxies[key] = env_proxy(url)
        return self._proxies[key]

    @contextmanager
    def mapped(self, url: str, proxy: str | None = None) -> Iterator[None]:
        """Turn transport failures inside the block into ProviderUnavailable / ProviderTimeout."""
        try:
            yield
        except TimeoutError as exc:  # aiohttp's own timeouts subclass TimeoutError
            raise ProviderTimeout(
                f"{self.provider} did not answer within {self.timeout_s:g}s ({origin(url)})"
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise ProviderUnavailable(f"{self.provider}: invalid base URL ({origin(url)})") from exc
        except (aiohttp.ClientError, OSError) as exc:
            detail = type(exc).__name__
            if isinstance(exc, aiohttp.ClientConnectorError):
                detail = f"cannot connect: {exc.os_error.strerror or exc.os_error}"
                if isinstance(exc, aiohttp.ClientProxyConnectionError) and proxy is not None:
                    detail = f"cannot connect to the proxy {origin(proxy)}: {exc.os_error.strerror}"
            raise ProviderUnavailable(f"{self.provider} unreachable at {origin(url)} ({detail})") from exc

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response, whatever its status (the caller releases it)."""
        data = None
        all_headers = dict(headers)
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            all_headers["Content-Type"] = "application/json"
        kwargs: dict[str, Any] = {} if stream else {"timeout": self._whole}
        proxy = self.proxy_for(url)
        if proxy is not None:
            kwargs["proxy"] = proxy
        with self.mapped(url, proxy):
            # Redirects are never followed: aiohttp would carry the key headers (x-api-key, api-key,
            # x-goog-api-key) and the prompt to wherever the Location points. A 3xx is an error.
            return await self.session().request(
                method, url, data=data, headers=all_headers, params=params, allow_redirects=False, **kwargs
            )

    async def error_for(self, response: aiohttp.ClientResponse, secret: str | None) -> ProviderError:
        """Read an error answer and map it; releases the response."""
        if 300 <= response.status < 400:
            response.release()
            location = response.headers.get("Location", "")
            target = origin(location) if urlsplit(location).hostname else "another path of the same server"
            return ProviderUnavailable(
                f"{self.provider} answered {response.status}, a redirect to {target}: AI-Lab follows no "
                "redirects (they would carry the key and the prompt along); set the base URL to the final "
                "address"
            )
        try:
            with self.mapped(str(response.url)):
                body = await response.read()
        finally:
            response.release()
        if self._error_hook is not None:
            special = self._error_hook(response.status, body, scrub(error_message(body), secret))
            if special is not None:
                return special
        message = scrub(error_message(body), secret)
        return status_error(self.provider, response.status, message, response.headers.get("Retry-After"))

    @asynccontextmanager
    async def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        secret: str | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A 2xx response (a non-2xx one is raised as a ProviderError), closed when the block exits.

        Leaving the block before the body was read (a client that went away) closes the connection
        instead of returning it to the pool, so the upstream stops generating.
        """
        response = await self.send(method, url, headers=headers, body=body, params=params, stream=stream)
        if response.status >= 300:
            raise await self.error_for(response, secret)
        try:
            yield response
        finally:
            if response.content.is_eof():
                response.release()
            else:
                response.close()

    async def json(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        secret: str | None = None,
    ) -> Any:
        """Send a request and return its decoded JSON answer."""
        async with self.open(method, url, headers=headers, body=body, params=params, secret=secret) as resp:
            with self.mapped(url):
                raw = await resp.read()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(f"{self.provider} answered with invalid JSON") from exc

    async def sse(self, response: aiohttp.ClientResponse) -> AsyncIterator[SSEEvent]:
        """The events of a streamed answer; transport failures mid-stream are mapped too."""
        decoder = SSEDecoder()
        url = str(response.url)
        with self.mapped(url):
            async for chunk in response.content.iter_any():
                for event in decoder.feed(chunk):
                    yield event
        for event in decoder.flush():
            yield event

    async def lines(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The lines of a newline-delimited JSON answer; transport failures mid-stream are mapped."""
        decoder = LineDecoder()
        with self.mapped(str(response.url)):
            async for chunk in response.content.iter_any():
                for line in decoder.feed(chunk):
                    yield line
        for line in decoder.flush():
            yield line

    async def aclose(self) -> None:
        """Close the session (and its pooled connections)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class ResponseBody:
    """A raw upstream body as an async iterator of bytes, for pass-through.

    ``aclose()`` releases the upstream connection; it is called automatically at the end of the body,
    and a consumer that stops early (or never starts) must call it (``contextlib.aclosing`` does).
    """

    def __init__(self, client: HttpClient, response: aiohttp.ClientResponse) -> None:
        self._client = client
        self._response = response
        self._done = False

    def __aiter__(self) -> ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        # Not ``response.closed``: aiohttp marks a response closed as soon as the whole body has
        # arrived in its buffer, before it was read.
        if self._done:
            raise StopAsyncIteration
        try:
            with self._client.mapped(str(self._response.url)):
                chunk = await self._response.content.readany()
        except BaseException:
            self._done = True
            self._response.close()
            raise
        if not chunk:
            self._done = True
            self._response.release()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Stop reading and release the connection (closing it when the body was not read to the end)."""
        self._done = True
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()


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
    any message) are done here, once.
    """

    stream_format: str = "sse"  # or "ndjson"
    end_marker: str | None = None  # a stream's last data line that is not JSON (OpenAI's ``[DONE]``)

    def headers(self, credential: Credential) -> dict[str, str]:
        """The authentication headers of a request."""
        raise NotImplementedError

    def chat_endpoint(self, credential: Credential, request: ChatRequest, *, stream: bool) -> Endpoint:
        """The URL (and query) of a chat request."""
        raise NotImplementedError

    def request_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body of a chat request."""
        raise NotImplementedError

    def parse_result(self, data: dict[str, Any], model: str) -> ChatResult:
        """A whole answer from the backend's JSON."""
        raise NotImplementedError

    def stream_parser(self) -> StreamParser:
        """A fresh parser for one streamed answer."""
        raise NotImplementedError

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One whole answer."""
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
        return self.parse_result(data, request.model)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The answer chunk by chunk; the last chunk has the finish reason and the usage."""
        credential = await self.require_credential()
        endpoint = self.chat_endpoint(credential, request, stream=True)
        parser = self.stream_parser()
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
                kind = response.headers.get("Content-Type", "no content type")
                raise ProviderUnavailable(f"{self.name} answered with an invalid stream (no events; {kind})")
        yield parser.final()

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[str | bytes]:
        if self.stream_format == "ndjson":
            async for line in self.http.lines(response):
                yield line
        else:
            async for event in self.http.sse(response):
                yield event.data
