"""The model calls' own HTTP/1.1 exchange: kept-alive connections to an upstream, on asyncio's
transports and httptools' parser (the one uvicorn's server parses requests with).

Why not aiohttp's client here. Measured with valgrind (16 concurrent calls over kept-alive connections to
the fake upstream), ``session.request`` and the read of a small JSON answer run ~345,000 instructions
per call on the client's side, ~37% of a whole gateway request; through this module (its deadline,
error mapping and pool included) it runs ~80,000, and a bare asyncio protocol feeding httptools ~16,000.
A model call is one shape of exchange, a POST of JSON bytes whose answer
is read whole or streamed, and it is the gateway's hot path, so every one is sent here
(``HttpClient.raw_post``, ``open`` and ``json`` choose): the pass-through's and the translating
backends' chat and embeddings. aiohttp stays the client of the rest (model listings, key checks, a
plugin's own ``HttpClient.send``) and of model calls this one would not do: through a proxy, or to a URL
with credentials in it.

What a call does: ``POST`` with ``Host``, ``Content-Length`` and the caller's headers (checked for line
breaks, which would let a header value smuggle another header or request), written in one ``write``;
the answer's status and headers come back (names lower-cased), its body read whole or as it arrives
(chunked, by length, or until the upstream closes), then the connection goes back to the pool when the
answer said keep-alive and was read to its end, and is closed otherwise. No compression is asked for (no
``Accept-Encoding``; a gzip or deflate body a server sends anyway is read, another encoding refused), no
cookie is kept and no redirect followed, as on the aiohttp path. TLS uses
Python's default context (the system's CAs, ``SSL_CERT_FILE``), hostname checked, as aiohttp does.

A connection idle for longer than :data:`KEEPALIVE_S` is closed rather than reused (aiohttp's default
too: the check comes with the pool's next use, no timer runs), and one the upstream closed while idle is
dropped when it does. A POST is never sent twice: a kept-alive connection the upstream closes just as a
request goes out fails that request, as with aiohttp (the gateway's routing may then try another
deployment).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

KEEPALIVE_S = 15.0  # an idle connection older than this is closed, not reused
# Past this many unread bytes of an answer, reading from the socket pauses until the reader catches up.
HIGH_WATER_BYTES = 256 * 1024
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # what a path (and a query) keeps as it is, its escapes included


class UpstreamURLError(ValueError):
    """A URL this client cannot call (another scheme than http(s), no host)."""


class HeaderError(ValueError):
    """A request header whose name or value holds a line break (it would smuggle another header)."""


class ConnectError(OSError):
    """The connection to the upstream could not be made; ``os_error`` says why."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(os_error.errno, os_error.strerror or str(os_error))
        self.os_error = os_error


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before its answer ended."""


class ProtocolError(ConnectionError):
    """The upstream's bytes are not an HTTP/1.1 answer."""


class Target:
    """Where a URL's requests go: the pool's key, the request line's target and the ``Host`` header."""

    __slots__ = ("host", "host_header", "key", "port", "target", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamURLError(f"not an http(s) URL with a host: {parts.scheme}://...")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (self.tls, self.host, self.port)
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        query = f"?{quote(parts.query, safe=_PATH_SAFE + '?')}" if parts.query else ""
        self.target = (path + query).encode("ascii")
        self.host_header = parts.netloc.encode("idna" if not parts.netloc.isascii() else "ascii")


def request_head(target: Target, headers: dict[str, str], content_length: int) -> bytes:
    """The head of a ``POST`` to ``target`` with ``headers`` and a body of ``content_length`` bytes."""
    lines = [b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (target.target, target.host_header)]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise HeaderError(f"the header {name.splitlines()[0][:40]!r} holds a line break or a colon")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    lines.append(b"Content-Length: %d\r\n\r\n" % content_length)
    return b"".join(lines)


class Answer:
    """An upstream's answer: ``status``, ``headers`` (lower-cased names), and its body, read whole
    (:meth:`read`) or as it arrives (:meth:`readany`). Shaped as the part of aiohttp's
    ``ClientResponse`` that the pass-through reads (``content`` is the answer itself), so both go
    through the same code. :meth:`release` when done (the connection goes back to the pool if it can),
    :meth:`close` to drop the connection (a reader that stops early).
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_connection",
        "_decoder",
        "_error",
        "_finished",
        "_head",
        "_keep_alive",
        "_let_go",
        "_waiter",
        "_whole",
        "headers",
        "read_timeout",
        "status",
        "url",
    )

    def __init__(self, connection: Connection, url: str, read_timeout: float | None) -> None:
        self._connection = connection
        self.url = url
        self.read_timeout = read_timeout  # each wait for bytes, when set (a stream's); else the caller's
        self.status = 0
        self.headers: dict[str, str] = {}
        self._head: asyncio.Future[None] = connection.loop.create_future()
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._finished = False  # the whole body has arrived
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._whole = False  # read whole: the socket is not paused for the reader
        self._let_go = False  # released or closed: later calls do nothing (as aiohttp's)
        self._decoder: zlib._Decompress | None = None  # a compressed body's

    @property
    def content(self) -> Answer:
        """The body's reader (the answer itself: aiohttp's responses have a ``content`` stream)."""
        return self

    # -- fed by the connection ----------------------------------------------------------------------
    def headers_done(self, status: int) -> None:
        self.status = status
        # None is asked for, but a server may compress anyway: gzip and deflate are read as aiohttp does.
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding != "identity":
            raise ProtocolError(f"an answer in an encoding AI-Lab cannot read ({encoding[:40]})")
        if not self._head.done():
            self._head.set_result(None)

    def feed(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                raise ProtocolError(f"a compressed body that does not decompress ({exc})") from None
            if not data:
                return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER_BYTES and not self._whole:
            self._connection.pause()
        self._wake()

    def finish(self, keep_alive: bool) -> None:
        if self._decoder is not None and (rest := self._decoder.flush()):
            self._chunks.append(rest)
        self._finished = True
        self._keep_alive = keep_alive
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self._finished:
            return
        self._error = error
        if not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: a caller that left does not log it
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the reader -----------------------------------------------------------------------------------
    async def wait_head(self) -> None:
        """Until the status and headers have arrived (a stream's wait is bounded by ``read_timeout``)."""
        if self.read_timeout is None:
            await self._head
        else:
            async with asyncio.timeout(self.read_timeout):
                await self._head

    def is_eof(self) -> bool:
        """Whether the body has arrived whole and been read."""
        return self._finished and not self._chunks

    async def readany(self) -> bytes:
        """What has arrived of the body and was not read yet (waiting for some); ``b""`` at its end."""
        while not self._chunks:
            if self._finished:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()
        return self._take()

    async def read(self) -> bytes:
        """The rest of the body, once it has all arrived."""
        self._whole = True
        while not self._finished:
            if self._error is not None:
                raise self._error
            await self._wait()
        return self._take()

    def _take(self) -> bytes:
        """What is buffered of the body, taken out; reading resumes if the buffer had paused it."""
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        if self._buffered > HIGH_WATER_BYTES:
            self._connection.resume()
        self._buffered = 0
        return data

    async def _wait(self) -> None:
        """Until more of the body arrives, it ends or fails; within ``read_timeout`` when set."""
        self._connection.resume()  # a reader waiting takes whatever the socket holds
        loop = self._connection.loop
        self._waiter = waiter = loop.create_future()
        # A plain timer rather than asyncio.timeout's context (a stream waits here once per chunk).
        timer = None if self.read_timeout is None else loop.call_later(self.read_timeout, self._stalled)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _stalled(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("no bytes of the answer arrived within the read timeout"))

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool when the body was read to its end
        and the upstream keeps it alive; it is closed otherwise. Once: a second call (or a close after
        it) does nothing."""
        if self._let_go:
            return
        self._let_go = True
        connection = self._connection
        connection.answer = None
        if self.is_eof() and self._keep_alive and self._error is None and not connection.closed:
            connection.pool.put(connection)
        else:
            connection.close()

    def close(self) -> None:
        """Drop the connection (the body is not read to its end: the upstream stops sending)."""
        if self._let_go:
            return
        self._let_go = True
        self._connection.answer = None
        self._connection.close()


class Connection(asyncio.Protocol):
    """One kept-alive connection of a :class:`Pool`; ``answer`` is the exchange it is in, if any."""

    def __init__(self, pool: Pool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.answer: Answer | None = None
        self.idle_since = 0.0
        self.closed = False
        self._paused = False
        self._parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        if self.answer is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:  # a callback's error too (its own, as the context)
            cause = exc.__context__
            self.answer.fail(
                cause
                if isinstance(cause, ProtocolError)
                else ProtocolError(f"an invalid HTTP answer ({exc})")
            )
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self.answer
        if answer is not None:
            if answer.status and self._until_close():
                answer.finish(keep_alive=False)  # a body without a length ends where the connection does
            else:
                answer.fail(UpstreamClosed("the upstream closed the connection before its answer ended"))
        self.pool.forget(self)

    def _until_close(self) -> bool:
        """Whether the answer's body has neither a length nor chunks (it ends when the upstream closes)."""
        assert self.answer is not None
        headers = self.answer.headers
        return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")

    # -- httptools' callbacks --------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        assert self.answer is not None
        if self.answer.status:  # a second answer to one request: the parser stops, the connection closes
            raise ProtocolError("the upstream sent more than one answer to one request")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.answer is not None
        self.answer.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.answer is not None
        self.answer.headers_done(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        assert self.answer is not None
        self.answer.feed(body)

    def on_message_complete(self) -> None:
        assert self.answer is not None
        self.answer.finish(self._parser.should_keep_alive())

    # -- the pool's ---------------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.pool.forget(self)


class Pool:
    """Kept-alive connections to one origin, at most ``limit`` open at once (a call past it waits)."""

    def __init__(
        self,
        target: Target,
        loop: asyncio.AbstractEventLoop,
        *,
        limit: int,
        connect_timeout: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._target = target
        self._loop = loop
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._tls = tls
        self._idle: list[Connection] = []  # the most recently used last
        self._open: set[Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def post(self, url: str, head: bytes, body: bytes, read_timeout: float | None) -> Answer:
        """Send ``head`` and ``body`` on a connection and wait for the answer's status and headers."""
        connection = await self._acquire()
        answer = Answer(connection, url, read_timeout)
        connection.answer = answer
        if len(body) < 65536:
            connection.send(head + body)  # one write, one segment
        else:  # a large body is not copied into the head's bytes
            connection.send(head)
            connection.send(body)
        try:
            await answer.wait_head()
        except BaseException:
            answer.close()
            raise
        return answer

    async def _acquire(self) -> Connection:
        """The most recently used idle connection still fit for use, else a new one (waiting for a
        connection to close or come back when ``limit`` are open)."""
        while True:
            now = self._loop.time()
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed and now - connection.idle_since < KEEPALIVE_S:
                    return connection
                connection.close()
            if len(self._open) < self._limit:
                break
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: the turn passes to the next waiter
                raise
        connection = Connection(self, self._loop)
        self._open.add(connection)
        target = self._target
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._loop.create_connection(
                    lambda: connection,
                    target.host,
                    target.port,
                    ssl=self._tls,
                    server_hostname=target.host if self._tls is not None else None,
                )
        except OSError as exc:
            self.forget(connection)
            raise ConnectError(exc) from exc
        except BaseException:
            connection.close()
            raise
        return connection

    def put(self, connection: Connection) -> None:
        """Take back a connection whose answer was read whole and which the upstream keeps alive; close
        the idle ones past :data:`KEEPALIVE_S` (the oldest come first)."""
        now = connection.idle_since = self._loop.time()
        while self._idle and now - self._idle[0].idle_since >= KEEPALIVE_S:
            self._idle.pop(0).close()
        self._idle.append(connection)
        self._wake()

    def forget(self, connection: Connection) -> None:
        """A connection closed (by either side): no longer open, nor idle."""
        if connection in self._open:
            self._open.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            connection.close()
