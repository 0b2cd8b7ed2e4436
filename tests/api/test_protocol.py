"""``ai-lab serve``'s HTTP protocol (``api/protocol.py``): a whole response leaves in one write, a stream's
head at once, and nothing held outlives its response.

uvicorn's real protocol serves a small Starlette app on a real socket; between it and the connection's
transport sits a pass-through that records what reaches the socket (the event loop's transport cannot be
looked into otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from uvicorn.config import Config
from uvicorn.server import ServerState

from ailab.api.protocol import HeadWithBody, HttpProtocol, whole_body_head

RELEASE_STREAM = "release"


class RecordingTransport(asyncio.Transport):
    """Passes everything to ``transport`` and records each write that reaches it."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        super().__init__()
        self._transport = transport
        self.writes = writes

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()


def _app(events: dict[str, asyncio.Event]) -> Starlette:
    async def whole(request: Request) -> Response:
        return Response(b'{"answer": 42}', media_type="application/json")

    async def stream(request: Request) -> StreamingResponse:
        async def events_() -> AsyncIterator[bytes]:
            await events[RELEASE_STREAM].wait()  # the head must have arrived before this is set
            yield b"data: one\n\n"
            yield b"data: two\n\n"

        return StreamingResponse(events_(), media_type="text/event-stream")

    return Starlette(
        routes=[Route("/whole", whole, methods=["GET", "HEAD"]), Route("/stream", stream)],
    )


class Served:
    def __init__(self, port: int, writes: list[bytes], events: dict[str, asyncio.Event]) -> None:
        self.port = port
        self.writes = writes
        self.events = events

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    events = {RELEASE_STREAM: asyncio.Event()}
    writes: list[bytes] = []
    config = Config(_app(events), lifespan="off", log_level="warning")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()

    class Recorded(HttpProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(RecordingTransport(transport, writes))

    server = await loop.create_server(lambda: Recorded(config, state, {}), "127.0.0.1", 0)
    try:
        yield Served(server.sockets[0].getsockname()[1], writes, events)
    finally:
        server.close()
        for connection in list(state.connections):
            connection.shutdown()
        await server.wait_closed()


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


async def test_a_whole_response_leaves_in_one_write(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /whole HTTP/1.1\r\nhost: x\r\n\r\nGET /whole HTTP/1.1\r\nhost: x\r\n\r\n")
    for _ in range(2):  # two on one kept-alive connection: each answered whole, in order
        head, body = await _response(reader)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b'{"answer": 42}'
    assert len(served.writes) == 2
    for write in served.writes:
        assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b'\r\n\r\n{"answer": 42}')
    writer.close()


async def test_a_streams_head_goes_before_its_first_event(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # while the app waits for the test
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
    assert served.writes == [head]
    served.events[RELEASE_STREAM].set()
    rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
    assert b"data: one" in rest and b"data: two" in rest
    writer.close()


async def test_a_head_requests_answer_is_not_held(served: Served) -> None:
    # A HEAD answer announces a length and sends no body: it goes out when the response ends.
    reader, writer = await served.connect()
    writer.write(b"HEAD /whole HTTP/1.1\r\nhost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 14" in head
    assert served.writes == [head]
    writer.write(b"GET /whole HTTP/1.1\r\nhost: x\r\n\r\n")  # the connection still serves
    assert (await _response(reader))[1] == b'{"answer": 42}'
    writer.close()


class Sink(asyncio.Transport):
    """The far end of :class:`HeadWithBody` in the unit tests below: what was sent, and how it ended."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.ended = ""

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.ended = "closed"

    def abort(self) -> None:
        self.ended = "aborted"

    def write_eof(self) -> None:
        self.ended = "eof"

    def get_write_buffer_size(self) -> int:
        return 0


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


@pytest.fixture
def sink() -> Sink:
    return Sink()


def test_only_a_head_announcing_a_length_is_held() -> None:
    assert whole_body_head(HEAD)
    assert not whole_body_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")  # a stream
    assert not whole_body_head(HEAD + b"{}")  # a whole response in one piece already
    assert not whole_body_head(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert not whole_body_head(b'{"content-length: 2\r\n\r\n')  # a body, not a head


@pytest.mark.parametrize(
    ("end", "sent", "ended"),
    [
        ("close", [HEAD], "closed"),  # a close sends what is held first, as a transport's buffer is
        ("write_eof", [HEAD], "eof"),
        ("abort", [], "aborted"),  # dropped, as a transport's buffer is
        ("flush", [HEAD], ""),
    ],
)
def test_a_held_head_at_the_connections_end(sink: Sink, end: str, sent: list[bytes], ended: str) -> None:
    transport = HeadWithBody(sink)
    transport.write(HEAD)
    assert sink.sent == [] and transport.get_write_buffer_size() == len(HEAD)
    getattr(transport, end)()
    assert sink.sent == sent and sink.ended == ended
    transport.write(b"later")  # nothing is held any more
    assert sink.sent[-1] == b"later"


def test_a_held_head_goes_with_the_next_write(sink: Sink) -> None:
    transport = HeadWithBody(sink)
    transport.write(HEAD)
    transport.write(memoryview(b"{}"))
    transport.writelines([b"next"])
    assert sink.sent == [HEAD + b"{}", b"next"]
