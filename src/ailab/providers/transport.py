"""The HTTP transport of the remote providers: one pooled aiohttp session each.

Sessions. Every remote provider owns one :class:`HttpClient`, which creates its ``aiohttp.ClientSession``
lazily, inside the running event loop, on first use (a session cannot be built at import time nor shared
between loops). The pooled connector keeps connections to the upstream alive between requests, which is
what makes the gateway's pass-through fast. Timeouts come from ``provider_timeout_seconds``: the connect
phase gets a short one of its own (an unreachable host should fail in seconds, not minutes); a streamed
answer may last long but each read must arrive within the timeout; a whole non-streamed answer must too
(:meth:`HttpClient.json` and the pass-through read it under a :class:`Deadline`, whose timer only an
answer that lasts arms; a plugin's own :meth:`HttpClient.send` gets aiohttp's whole-answer timeout).
Errors become :class:`~ailab.errors.ProviderError` subclasses (``upstream_errors.py``).

Cookies. None is kept: a cookie an upstream sets (Cloudflare, in front of OpenAI's API, does) would
otherwise go back with every later call over the shared session, whoever makes it, and looking the jar
up costs every call too.

Redirects. No upstream call follows one: a 3xx is a ProviderUnavailable naming where it pointed (only
its origin). Following it would send the key headers and the prompt to that place.

The model calls. POSTs (:meth:`HttpClient.raw_post`: the gateway's pass-through, and the chat and
embeddings calls of :meth:`HttpClient.open` and :meth:`HttpClient.json`) go over ``http1.py``'s own
kept-alive connections, a quarter of aiohttp's client's instructions per call (measured there), except
through a proxy or to a URL with credentials in it; aiohttp serves those, the GETs (model listings, key
checks) and a plugin's own :meth:`HttpClient.send`.

Proxies. Upstream calls honour ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` (either case), looked up
once per upstream origin: aiohttp's own ``trust_env`` looks them up, and ``~/.netrc`` in a thread, on
every request, which costs more than the gateway's whole budget.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson

from ailab import late
from ailab.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from ailab.late import LATE_STARTS
from ailab.providers import http1
from ailab.providers.sse import LineDecoder, SSEDecoder, SSEEvent
from ailab.providers.upstream_errors import ErrorHook, error_message, scrub, status_error

CONNECT_TIMEOUT_S = 10.0
POOL_LIMIT = 256
# An upstream's answer: aiohttp's, or the own client's (http1.Answer), which has the same shape where read.
Response = aiohttp.ClientResponse | http1.Answer
TARGETS_CACHED = 256  # parsed upstream URLs kept (Azure's differ by deployment); past it, parsed again
# A stream whose reader stopped at its protocol's last event ([DONE], message_stop) has at most a few
# bytes left (the chunked body's end): read in the background, they let its connection be reused.
DRAIN_TIMEOUT_S = 2.0
DRAIN_LIMIT_BYTES = 64 * 1024


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
        # A whole non-streamed answer must arrive within the timeout, not just each read of it. No read
        # timeout beside it: one as long could never fire first, and would re-arm a timer on every read.
        self._whole = aiohttp.ClientTimeout(total=timeout_s, sock_connect=self._connect_s)
        # For a caller that bounds the whole answer itself (:meth:`deadline`): aiohttp times the connect.
        self._connect_only = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_s, sock_read=None)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies: dict[str, str | None] = {}  # by upstream origin
        self._draining: set[asyncio.Task[None]] = set()
        # The model calls' own connections (http1.py): a pool per origin, in the loop they were made in.
        self._pools: dict[tuple[bool, str, int], http1.Pool] = {}
        self._pools_loop: asyncio.AbstractEventLoop | None = None
        self._targets: dict[str, http1.Target | None] = {}  # by URL; None: aiohttp's to call
        self._tls: ssl.SSLContext | None = None

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
                cookie_jar=aiohttp.DummyCookieJar(),  # see the module docstring
            )
            self._loop = loop
        return self._session

    def proxy_for(self, url: str) -> str | None:
        """The proxy for ``url`` from the environment (looked up once per origin), or None."""
        key = url[: url.find("/", url.find("//") + 2)] if "//" in url else url
        if key not in self._proxies:
            self._proxies[key] = env_proxy(url)
        return self._proxies[key]

    def deadline(self, url: str) -> Deadline:
        """``with client.deadline(url):`` the block (sending to ``url`` and reading the whole answer) must
        end within the timeout, else ProviderTimeout (see :class:`Deadline`)."""
        return Deadline(self, url)

    def mapped(self, url: str, proxy: str | None = None) -> _Mapped:
        """Turn transport failures inside the block into ProviderUnavailable / ProviderTimeout."""
        return _Mapped(self, url, proxy)

    def timeout_error(self, url: str) -> ProviderTimeout:
        """The error of a call to ``url`` that took longer than the timeout."""
        return ProviderTimeout(f"{self.provider} did not answer within {self.timeout_s:g}s ({origin(url)})")

    def map_error(self, exc: BaseException, url: str, proxy: str | None = None) -> ProviderError | None:
        """The ProviderError a transport failure stands for; None for an exception that is no such failure."""
        if isinstance(exc, TimeoutError):  # aiohttp's own timeouts subclass TimeoutError
            return self.timeout_error(url)
        if isinstance(exc, aiohttp.InvalidURL | http1.UpstreamURLError):
            return ProviderUnavailable(f"{self.provider}: invalid base URL ({origin(url)})")
        if isinstance(exc, http1.HeaderError):
            return ProviderUnavailable(f"{self.provider}: {exc} (check the stored key and settings)")
        if isinstance(exc, aiohttp.ClientError | OSError):
            detail = type(exc).__name__
            if isinstance(exc, aiohttp.ClientConnectorError | http1.ConnectError):
                detail = f"cannot connect: {exc.os_error.strerror or exc.os_error}"
                if isinstance(exc, aiohttp.ClientProxyConnectionError) and proxy is not None:
                    detail = f"cannot connect to the proxy {origin(proxy)}: {exc.os_error.strerror}"
            elif isinstance(exc, http1.UpstreamClosed | http1.ProtocolError):
                detail = str(exc)
            return ProviderUnavailable(f"{self.provider} unreachable at {origin(url)} ({detail})")
        return None

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        timed: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response, whatever its status (the caller releases it).

        ``timed=False``: a non-streamed answer the caller reads inside a :meth:`deadline`, which bounds it.
        """
        data = None
        all_headers = dict(headers)
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            all_headers["Content-Type"] = "application/json"
        kwargs: dict[str, Any] = {} if stream else {"timeout": self._whole if timed else self._connect_only}
        proxy = self.proxy_for(url)
        if proxy is not None:
            kwargs["proxy"] = proxy
        with self.mapped(url, proxy):
            # Redirects are never followed: aiohttp would carry the key headers (x-api-key, api-key,
            # x-goog-api-key) and the prompt to wherever the Location points. A 3xx is an error.
            return await self.session().request(
                method, url, data=data, headers=all_headers, params=params, allow_redirects=False, **kwargs
            )

    async def raw_post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        params: Mapping[str, str] | None = None,
        stream: bool,
    ) -> Response:
        """POST JSON ``body`` (a model call) and return the answer, whatever its status (the caller
        releases it; see the module docstring for which client sends it). A non-streamed answer is read
        inside the caller's :meth:`deadline`; each wait of a stream's is bounded by the timeout.
        """
        full_url = f"{url}?{urlencode(params)}" if params else url
        try:
            target = self._targets[full_url]
        except KeyError:
            target = self._target(full_url)
        if target is None:  # through a proxy, or credentials in the URL: aiohttp's (its Content-Type too)
            return await self.send("POST", full_url, headers=headers, body=body, stream=stream, timed=False)
        with self.mapped(url):
            head = http1.request_head(target, {**headers, **_JSON_TYPE}, len(body))
            timeout = self.timeout_s if stream else None
            return await self._pool(target).post(url, head, body, timeout)

    def _target(self, url: str) -> http1.Target | None:
        """Where a POST to ``url`` goes, parsed once; None for what aiohttp must serve."""
        if len(self._targets) >= TARGETS_CACHED:
            self._targets.clear()
        target = None
        if self.proxy_for(url) is None and "@" not in urlsplit(url).netloc:
            with self.mapped(url):
                target = http1.Target(url)
        self._targets[url] = target
        return target

    def _pool(self, target: http1.Target) -> http1.Pool:
        loop = asyncio.get_running_loop()
        if self._pools_loop is not loop:  # a new loop (tests run several): the old one's are gone
            self._pools, self._pools_loop = {}, loop
        pool = self._pools.get(target.key)
        if pool is None:
            if target.tls and self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls if target.tls else None
            pool = http1.Pool(target, loop, limit=POOL_LIMIT, connect_timeout=self._connect_s, tls=tls)
            self._pools[target.key] = pool
        return pool

    async def error_for(self, response: Response, secret: str | None) -> ProviderError:
        """Read an error answer and map it; releases the response."""
        if 300 <= response.status < 400:
            response.release()
            location = response.headers.get("location", "")
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
        message = scrub(error_message(body), secret)
        if self._error_hook is not None:
            special = self._error_hook(response.status, body, message)
            if special is not None:
                return special
        return status_error(self.provider, response.status, message, response.headers.get("retry-after"))

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
        timed: bool = True,
    ) -> AsyncIterator[Response]:
        """A 2xx response (a non-2xx one is raised as a ProviderError), closed when the block exits.
        ``timed=False``: as for :meth:`send`, the caller's :meth:`deadline` bounds the call. A POST of a
        body that is timed so (or a stream, each of whose reads is) goes as :meth:`raw_post` sends it.

        Leaving the block by an exception before the body was read (a client that went away) closes the
        connection instead of returning it to the pool, so the upstream stops generating. Leaving it
        normally with the body unfinished (a reader that stopped at the stream's last event) reads the
        rest in the background, so the connection goes back to the pool instead of being closed: the
        next request then needs no new connection.
        """
        response: Response
        if method == "POST" and body is not None and (stream or not timed):
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            response = await self.raw_post(url, headers=headers, body=data, params=params, stream=stream)
        else:
            response = await self.send(
                method, url, headers=headers, body=body, params=params, stream=stream, timed=timed
            )
        if response.status >= 300:
            raise await self.error_for(response, secret)
        try:
            yield response
        except BaseException:
            if response.content.is_eof():
                response.release()
            else:
                response.close()
            raise
        if response.content.is_eof():
            response.release()
        else:
            task = asyncio.get_running_loop().create_task(_drain(response))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

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
        """Send a request and return its decoded JSON answer; the call and the whole answer's read come
        within the timeout, under one :meth:`deadline`."""
        with self.deadline(url):
            async with self.open(
                method, url, headers=headers, body=body, params=params, secret=secret, timed=False
            ) as resp:
                with self.mapped(url):
                    raw = await resp.read()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderUnavailable(f"{self.provider} answered with invalid JSON") from exc

    async def sse(self, response: Response) -> AsyncIterator[SSEEvent]:
        """The events of a streamed answer; transport failures mid-stream are mapped too."""
        decoder = SSEDecoder()
        url = str(response.url)
        with self.mapped(url):
            while chunk := await response.content.readany():
                for event in decoder.feed(chunk):
                    yield event
        for event in decoder.flush():
            yield event

    async def lines(self, response: Response) -> AsyncIterator[bytes]:
        """The lines of a newline-delimited JSON answer; transport failures mid-stream are mapped."""
        decoder = LineDecoder()
        with self.mapped(str(response.url)):
            while chunk := await response.content.readany():
                for line in decoder.feed(chunk):
                    yield line
        for line in decoder.flush():
            yield line

    async def drained(self) -> None:
        """Wait until the bodies being read in the background are read (their connections pooled)."""
        while self._draining:
            await asyncio.gather(*list(self._draining), return_exceptions=True)

    async def aclose(self) -> None:
        """Close the session (and its pooled connections)."""
        for task in list(self._draining):
            task.cancel()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        for pool in self._pools.values():
            pool.close()
        self._pools = {}


_JSON_TYPE = {"Content-Type": "application/json"}


async def _drain(response: Response) -> None:
    """Read what is left of a body (a little, soon) and give its connection back; else close it."""
    read = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while read <= DRAIN_LIMIT_BYTES and (chunk := await response.content.readany()):
                read += len(chunk)
    except (asyncio.CancelledError, TimeoutError, aiohttp.ClientError, OSError):
        response.close()
        return
    if response.content.is_eof():
        response.release()
    else:  # more than a stream's end was left: the upstream is still sending
        response.close()


class Deadline:
    """The context manager of :meth:`HttpClient.deadline`: past the client's timeout its task is cancelled,
    and the block raises :class:`ProviderTimeout`, as aiohttp's whole-answer timeout does (and as
    ``asyncio.timeout`` decides whether a cancel was its own). Its loop timer is armed only once the block
    has lasted a period (``late.py``): aiohttp's own took ~2.5 us per call (a timer armed and cancelled,
    the task looked up), and most pass-through answers come sooner.
    """

    __slots__ = ("_cancelling", "_client", "_due", "_expired", "_handle", "_late", "_task", "_url")

    def __init__(self, client: HttpClient, url: str) -> None:
        self._client, self._url = client, url
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "a deadline bounds a task"
        loop = task.get_loop()
        self._task = task
        self._cancelling = task.cancelling()
        self._due = loop.time() + self._client.timeout_s
        self._late = LATE_STARTS.of(loop)
        if self._client.timeout_s <= 2 * late.PERIOD_S:  # too short to wait for a late start
            self.start()
        else:
            self._late.add(self)

    def start(self) -> None:
        """Arm the timer (the block has lasted; or the timeout is short)."""
        self._handle = self._task.get_loop().call_at(self._due, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self._late.discard(self)
        if self._handle is not None:
            self._handle.cancel()
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise self._client.timeout_error(self._url) from exc


class _Mapped:
    """The context manager of :meth:`HttpClient.mapped` (a class: the hot path enters one per upstream
    call and per chunk read, and a generator-based one costs several times more). It keeps no state of
    its own between uses, so a stream's reads share one."""

    __slots__ = ("_client", "_proxy", "_url")

    def __init__(self, client: HttpClient, url: str, proxy: str | None) -> None:
        self._client, self._url, self._proxy = client, url, proxy

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            return
        mapped = self._client.map_error(exc, self._url, self._proxy)
        if mapped is not None:
            raise mapped from exc


class ResponseBody:
    """A raw upstream body as an async iterator of bytes, for pass-through.

    ``aclose()`` releases the upstream connection; it is called automatically at the end of the body,
    and a consumer that stops early (or never starts) must call it (``contextlib.aclosing`` does).
    """

    def __init__(self, client: HttpClient, response: Response, url: str) -> None:
        self._response = response
        # For errors; ``str(response.url)`` would build it again. One, reused for every chunk's read.
        self._mapped = client.mapped(url)
        self._done = False

    def __aiter__(self) -> ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        # Not ``response.closed``: aiohttp marks a response closed as soon as the whole body has
        # arrived in its buffer, before it was read.
        if self._done:
            raise StopAsyncIteration
        try:
            with self._mapped:
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

    async def read(self) -> bytes:
        """The whole (rest of the) body at once, then the connection released: one read for a JSON answer."""
        if self._done:
            return b""
        self._done = True
        try:
            with self._mapped:
                data = await self._response.read()
        except BaseException:
            self._response.close()
            raise
        self._response.release()
        return data

    async def aclose(self) -> None:
        """Stop reading and release the connection (closing it when the body was not read to the end)."""
        self._done = True
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()
