"""The common machinery of the fake provider servers: start/stop, request recording, behaviours.

A :class:`FakeServer` is a real aiohttp.web server on 127.0.0.1. Subclasses add the provider's routes and
its error shape; this class records every request and applies the behaviours a test switches on:

- ``api_key``: the key the server accepts (``any_key=True``: any or none); another gets the provider's 401
- ``fail_status``: answer every request with this error status (429 adds ``Retry-After: retry_after``)
- ``slow``: hold every request until ``release`` is set (for client timeouts; no sleeping); ``received``
  is set when a request arrives, ``disconnected`` when a held request's client goes away
- ``stall_after``: streams send this many text pieces, then wait for ``release`` (mid-stream timeouts)
- ``endless``: streams never finish; ``disconnected`` is set when the client goes away
- ``paced``: streams send each piece in a write of its own, the loop turning between two, as a model
  streams its tokens (otherwise a whole stream is one write, for benchmarks' speed)
- ``drop_after``: streams send this many text pieces, then the connection is cut (upstream crash)
- ``error_after``: streams send this many text pieces, then the provider's error event, quoting the key
  the client sent (as a careless upstream does), and end
- ``garbage``: every answer is 200 with an HTML page (a broken proxy in front of the upstream)
- ``odd_usage``: OpenAI's fakes report this usage object instead of the counts (a careless server's)
- ``reset_connections``: every request's connection is reset (TCP RST) before any answer (an upstream
  that crashed)
- ``reply`` / ``models``: what it answers (``echo=True``: ``"echo: <the last message>"`` instead of ``reply``)
- ``choice``: asked for structured output (each provider's own way), it answers a JSON object valid
  against the schema whose enum properties take ``choice`` when it is allowed, else their first value

``images``: every image a chat request showed, decoded from the provider's own wire format (a malformed
one is answered 400, as the provider would), so a test can assert that the very bytes arrived.

Tools (each fake in its provider's own wire format, checked as the real API checks it): ``tools_received``
holds the tools of every chat request that offered some, as sent. The fake calls a tool when its tool
choice forces one (the named tool, or the first for "required"/"any"), when the last user message asks
for it (:data:`TOOL_REQUEST`, "use the tool", in it; the first tool), or when ``tool_calls`` is set
(``[("get_weather", {"city": "Paris"})]``: these calls, of the tools offered); the arguments are those
given, else a value valid against the tool's schema (:meth:`FakeServer.sample`). After a tool result it
answers text quoting the results (:func:`quoting`), unless its choice forces another call.

Embeddings (each fake's own endpoint) are :func:`bag_of_words_vector` of each text: deterministic, and
with meaning enough for retrieval tests (texts that share words are near). A model is an embedding model
when its name says so (``embed`` in it, as in ``text-embedding-3-small``, ``nomic-embed-text``,
``embed-v4.0``); another is answered as the provider answers an unknown model. At most
``max_embedding_inputs`` texts per request, as the real API allows; usage counts words.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import math
import re
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import orjson
from aiohttp import web

DEFAULT_REPLY = "Hello from the fake upstream, nice to meet you."
EMBEDDING_DIMS = 64  # the size of the fakes' vectors, unless a request asks for another
JSON = "application/json"
BODY: web.RequestKey[Any] = web.RequestKey("json_body", object)


@dataclass
class RecordedRequest:
    """What the fake received: method, path, query, headers (lower-case names) and the JSON body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    url: str = ""  # path with query string, as sent (not decoded)

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class ReceivedImage:
    """An image a chat request showed: its media type (as declared, or from its data URL) and bytes."""

    media_type: str
    data: bytes = field(repr=False)


_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


def image_problem(media_type: str, data: bytes) -> str | None:
    """What a provider would refuse in an image: an unsupported type, or bytes of another format."""
    signatures = _SIGNATURES.get(media_type)
    if signatures is None:
        return f"unsupported image type {media_type!r}: use image/jpeg, image/png, image/gif or image/webp"
    if not data.startswith(signatures) or (media_type == "image/webp" and data[8:12] != b"WEBP"):
        return f"the image does not match the provided media type {media_type}"
    return None


def decode_base64(text: Any) -> bytes | None:
    """Strict base64 (what the providers accept), or None."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_data_url(url: Any) -> ReceivedImage | None:
    """The image of a ``data:<type>;base64,<data>`` URL, or None when it is not one."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        return None
    data = decode_base64(payload)
    if data is None:
        return None
    return ReceivedImage(header[5:].split(";", 1)[0], data)


@dataclass
class Generation:
    """What one request asked for and what the fake answers."""

    model: str
    pieces: list[str]
    prompt_tokens: int
    finish_reason: str = "stop"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)


TOOL_REQUEST = "use the tool"


@dataclass
class PlannedCall:
    """A tool call the fake answers: its id (the provider's style; unused where the wire has none), the
    tool and the arguments."""

    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def json(self) -> str:
        return orjson.dumps(self.arguments).decode()

    def pieces(self) -> list[str]:
        """The arguments' JSON text in short pieces, as a stream sends them."""
        return re.findall(r".{1,6}", self.json, re.DOTALL)


def quoting(results: list[str]) -> str:
    """The fakes' answer after tool results: they are quoted."""
    return "The tool said: " + " | ".join(results)


def words(text: str) -> int:
    """A crude token count: whitespace-separated words."""
    return len(text.split())


def bag_of_words_vector(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """The fakes' embedding of ``text``: a hashed bag of words, scaled to unit length.

    Each lower-cased word (``\\w+``) adds one to the dimension its CRC-32 picks; texts that share words
    therefore have a high cosine similarity, texts that share none (nearly) zero. Deterministic across
    runs and processes (no ``hash()`` randomisation). A text without words is the zero vector.
    """
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        vector[zlib.crc32(word.encode("utf-8")) % dims] += 1.0
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm else vector


def float32_base64(vector: list[float]) -> str:
    """A vector as OpenAI's ``encoding_format: base64`` sends it: little-endian float32 bytes."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def is_embedding_model(model: str) -> bool:
    """Whether a fake serves ``model`` as an embedding model: its name says so (see the module doc)."""
    return "embed" in model.lower()


class FakeServer:
    """A provider's API on 127.0.0.1 (subclasses: routes, key extraction, error shape)."""

    provider: ClassVar[str] = "fake"
    default_api_key: ClassVar[str | None] = None
    default_models: ClassVar[tuple[str, ...]] = ()
    max_embedding_inputs: ClassVar[int | None] = None  # texts per embeddings request (None: no limit)

    def __init__(
        self,
        *,
        api_key: str | None = None,
        any_key: bool = False,
        models: list[str] | None = None,
        reply: str = DEFAULT_REPLY,
        record: bool = True,
        echo: bool = False,
        paced: bool = False,
    ) -> None:
        # None: every key (or none) is accepted.
        self.api_key: str | None = None if any_key else (api_key or self.default_api_key)
        self.models = list(models if models is not None else self.default_models)
        self.reply = reply
        self.echo = echo
        self.choice: str | None = None
        self.tool_calls: list[tuple[str, dict[str, Any]]] = []
        self.tools_received: list[Any] = []
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.images: list[ReceivedImage] = []
        self.fail_status: int | None = None
        self.retry_after = "7"
        self.slow = False
        self.stall_after: int | None = None
        self.endless = False
        self.paced = paced
        self.drop_after: int | None = None
        self.error_after: int | None = None
        self.garbage = False
        self.odd_usage: dict[str, Any] | None = None
        self.reset_connections = False
        self.release = asyncio.Event()
        self.received = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.port = 0
        self.host = "127.0.0.1"
        self._runner: web.AppRunner | None = None
        self._counter = 0

    # -- what subclasses provide ---------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """The provider's routes."""
        raise NotImplementedError

    def key_of(self, request: web.Request) -> str | None:
        """The key the client sent, the provider's way."""
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def stream_error(self, key: str) -> bytes:
        """An error event in the middle of a stream, the provider's way (OpenAI's by default)."""
        message = f"Incorrect API key provided: {key}. You can find your API key at platform."
        return (
            b"data: "
            + orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})
            + b"\n\n"
        )

    def error(self, status: int, kind: str, message: str) -> web.Response:
        """An error answer in the provider's shape; ``kind``: auth, not_found, rate_limit, server, invalid."""
        return self.json({"error": {"message": message, "type": kind}}, status=status)

    def base_path(self) -> str:
        """The path the provider's client puts after host:port in its base URL."""
        return ""

    # -- helpers for subclasses ----------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL a client of this provider is configured with."""
        return self.origin + self.base_path()

    def next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter:08d}"

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type=JSON, headers=headers)

    @staticmethod
    def body(request: web.Request) -> Any:
        """The request's JSON body (parsed once by the middleware)."""
        return request.get(BODY)

    def generation(
        self,
        model: str,
        prompt_texts: list[str],
        max_tokens: int | None = None,
        schema: Any = None,
        reply: str | None = None,
    ) -> Generation:
        """The answer to a request: ``reply`` (or the echo) cut into word pieces, truncated at ``max_tokens``.

        With a JSON ``schema`` (structured output), a JSON object valid against it, in short pieces.
        """
        if schema is not None:
            reply = orjson.dumps(self.sample(schema)).decode()
            pieces = re.findall(r".{1,6}", reply, re.DOTALL)
        else:
            if reply is None:
                reply = f"echo: {prompt_texts[-1] if prompt_texts else ''}" if self.echo else self.reply
            pieces = re.findall(r"\S+\s*", reply) or [""]
        finish = "stop"
        if max_tokens is not None and len(pieces) > max_tokens:
            pieces, finish = pieces[:max_tokens], "length"
        return Generation(model, pieces, sum(words(t) for t in prompt_texts), finish)

    def sample(self, schema: Any) -> Any:
        """A value valid against ``schema`` (JSON schema, or Gemini's upper-case dialect)."""
        enum = schema.get("enum")
        if enum:
            return self.choice if self.choice in enum else enum[0]
        kind = str(schema.get("type", "object")).lower()
        if kind == "object":
            return {name: self.sample(sub) for name, sub in (schema.get("properties") or {}).items()}
        return {"array": [], "number": 1, "integer": 1, "boolean": True}.get(kind, "text")

    def plan_calls(
        self,
        tools: dict[str, Any],
        mode: str,
        forced: str | None,
        last_user: str,
        after_result: bool,
        prefix: str = "call_",
    ) -> list[PlannedCall]:
        """The tool calls to answer (none: answer text), see the module docstring.

        ``tools``: name -> its parameters' schema; ``mode``: auto, none, required (any tool) or function
        (``forced``); ``after_result``: the last message is a tool result.
        """
        if not tools or mode == "none" or (after_result and mode == "auto"):
            return []
        offered = [forced] if forced is not None else list(tools)
        chosen = [(name, args) for name, args in self.tool_calls if name in offered]
        if not chosen and (mode != "auto" or TOOL_REQUEST in last_user.lower()):
            chosen = [(offered[0], self.sample(tools[offered[0]] or {"type": "object"}))]
        return [PlannedCall(self.next_id(prefix), name, args) for name, args in chosen]

    def unknown_model(self, model: str) -> bool:
        return bool(self.models) and model not in self.models

    async def stream(
        self,
        request: web.Request,
        content_type: str,
        head: list[bytes],
        piece: Callable[[str], bytes],
        gen: Generation,
        tail: Callable[[], list[bytes]],
    ) -> web.StreamResponse:
        """Send ``head``, one ``piece(text)`` per text piece, then ``tail()``, honouring the behaviours."""
        response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            plain = self.stall_after is None and self.drop_after is None and self.error_after is None
            if not (self.endless or self.paced) and plain:
                # One write for the whole answer: the fake must stay fast under a benchmark's load.
                await response.write(b"".join([*head, *(piece(t) for t in gen.pieces), *tail()]))
                await response.write_eof()
                return response
            for data in head:
                await response.write(data)
            for index, text in enumerate(self._pieces(gen)):
                if self.stall_after is not None and index == self.stall_after:
                    await self.release.wait()
                if index == self.drop_after and request.transport is not None:
                    request.transport.close()  # mid-body, so the client sees a truncated answer
                    return response
                if index == self.error_after:
                    await response.write(self.stream_error(self.key_of(request) or ""))
                    await response.write_eof()
                    return response
                await response.write(piece(text))
                if self.endless or self.paced:
                    await asyncio.sleep(0)  # a yield, so the loop (and the client) can run
            for data in tail():
                await response.write(data)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response

    def _pieces(self, gen: Generation) -> Iterator[str]:
        if not self.endless:
            yield from gen.pieces
            return
        while True:
            yield from gen.pieces

    # -- the server ------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            request[BODY] = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return self.error(400, "invalid", "request body is not valid JSON")
        if self.record:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=request[BODY],
                    url=request.raw_path,
                )
            )
        self.received.set()
        if self.slow:
            try:
                await self.release.wait()
            except asyncio.CancelledError:  # handler_cancellation: the client went away
                self.disconnected.set()
                raise
        if self.reset_connections and request.transport is not None:
            sock = request.transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()
            raise ConnectionResetError("reset by the fake")
        if self.fail_status is not None:
            return self._failure(self.fail_status)
        if self.garbage:
            return web.Response(body=b"<html><body>It works!</body></html>", content_type="text/html")
        if self.api_key is not None and self.key_of(request) != self.api_key:
            return self.error(401, "auth", f"Incorrect API key provided: {self.key_of(request)}")
        result: web.StreamResponse = await handler(request)
        return result

    def _failure(self, status: int) -> web.Response:
        if status == 429:
            response = self.error(429, "rate_limit", "Rate limit reached, please slow down")
            response.headers["Retry-After"] = self.retry_after
            return response
        if status == 404:
            return self.error(404, "not_found", "not found")
        if status in (401, 403):
            return self.error(status, "auth", "credentials refused")
        return self.error(status, "server", "The server had an error while processing your request.")

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        app.add_routes(self.routes())
        return app

    async def start(self, port: int = 0) -> Self:
        """Listen on 127.0.0.1 (a free port when 0)."""
        # handler_cancellation: a handler held by ``slow`` or ``stall_after`` learns that its client left.
        self._runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=1.0, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        server = site._server  # the only way to learn the port picked for 0
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Let held requests go and shut down."""
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def reset(self) -> None:
        """Forget recorded requests and switch the behaviours off."""
        self.requests.clear()
        self.images.clear()
        self.fail_status, self.slow, self.stall_after, self.endless = None, False, None, False
        self.drop_after, self.choice, self.error_after, self.garbage = None, None, None, False
        self.tool_calls, self.tools_received = [], []
        self.reset_connections, self.odd_usage, self.paced = False, None, False
        self.release = asyncio.Event()
        self.received = asyncio.Event()
        self.disconnected = asyncio.Event()

    @property
    def last(self) -> RecordedRequest:
        """The last request received."""
        return self.requests[-1]


def now() -> int:
    return int(time.time())


@contextlib.asynccontextmanager
async def running(server: FakeServer) -> AsyncIterator[FakeServer]:
    """``async with running(FakeX()) as fake``: started and stopped."""
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def main(factory: Callable[..., FakeServer], argv: list[str] | None = None) -> None:
    """Run a fake standalone: ``python -m tests.fakes.<provider>_server --port N [--api-key K]``.

    Without ``--api-key`` any key (or none) is accepted; requests are not recorded unless ``--record``.
    Prints ``listening on <base url>`` once ready.
    """
    parser = argparse.ArgumentParser(description=f"fake {factory.__name__} on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="the text every answer contains")
    parser.add_argument("--record", action="store_true", help="keep received requests in memory")
    parser.add_argument("--echo", action="store_true", help='answer "echo: <the last message>"')
    parser.add_argument("--paced", action="store_true", help="stream each piece in a write of its own")
    args = parser.parse_args(argv)

    async def serve() -> None:
        server = factory(
            api_key=args.api_key,
            any_key=args.api_key is None,
            reply=args.reply,
            record=args.record,
            echo=args.echo,
            paced=args.paced,
        )
        await server.start(args.port)
        print(f"listening on {server.base_url}", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop  # the fast loop when installed, as the server under test uses

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve())
