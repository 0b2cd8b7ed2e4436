"""The transport: a stream read to its last event gives its connection back; no cookie an upstream sets
is sent back on later calls (they come from every user)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from ailab.providers.transport import HttpClient


class StreamingServer:
    """Streams two SSE events then ``[DONE]``; ``endless`` keeps sending after it. Counts connections."""

    def __init__(self, *, endless: bool = False) -> None:
        self.endless = endless
        self.peers: set[tuple[str, int]] = set()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"n": 1}\n\ndata: {"n": 2}\n\n')
        await response.write(b"data: [DONE]\n\n")
        while self.endless:
            await response.write(b": still here " + b"x" * 8192 + b"\n\n")
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)  # the body's end comes after the reader has stopped at [DONE]
        await response.write_eof()
        return response


@pytest.fixture
async def server() -> AsyncIterator[StreamingServer]:
    fake = StreamingServer()
    app = web.Application()
    app.router.add_post("/stream", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/stream"
    yield fake
    await runner.cleanup()


async def read_until_done(client: HttpClient, url: str) -> list[str]:
    events = []
    async with client.open("POST", url, headers={}, body={}, stream=True) as response:
        async for event in client.sse(response):
            if event.data == "[DONE]":
                break  # as the providers do: the stream's end, not the body's
            events.append(event.data)
    return events


async def fail_at_first_event(client: HttpClient, url: str) -> None:
    async with client.open("POST", url, headers={}, body={}, stream=True) as response:
        async for _event in client.sse(response):
            raise LookupError("the client went away")


async def read_both_events(client: HttpClient, url: str) -> None:
    assert await read_until_done(client, url) == ['{"n": 1}', '{"n": 2}']


async def fail_reading(client: HttpClient, url: str) -> None:
    with pytest.raises(LookupError):
        await fail_at_first_event(client, url)


async def connections_for(
    server: StreamingServer, streams: int, read: Callable[[HttpClient, str], Awaitable[None]]
) -> int:
    """How many connections one client opened to ``server`` for ``streams`` reads by ``read``, each
    followed by the background reads it left."""
    client = HttpClient("fake", 10.0)
    try:
        for _ in range(streams):
            await read(client, server.url)
            await client.drained()
    finally:
        await client.aclose()
    return len(server.peers)


async def test_a_stream_read_to_its_last_event_reuses_its_connection(server: StreamingServer) -> None:
    assert await connections_for(server, 3, read_both_events) == 1


async def test_a_stream_that_goes_on_after_its_end_is_closed_not_pooled(server: StreamingServer) -> None:
    server.endless = True  # more than a stream's end is left: the connection cannot be reused
    assert await connections_for(server, 2, read_both_events) == 2


async def test_a_reader_that_fails_mid_stream_closes_the_connection(server: StreamingServer) -> None:
    server.endless = True
    assert await connections_for(server, 2, fail_reading) == 2


async def test_a_cookie_an_upstream_sets_is_never_sent_back() -> None:
    # Cloudflare, in front of OpenAI's API, sets cookies on its answers; carried back, a cookie one user's
    # call got would go with every later call of every user over the provider's shared session.
    cookies: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("__cf_bm", "one-users-session", path="/", httponly=True)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # A host name, not an address: aiohttp's default jar keeps no cookies of bare IP addresses.
    url = f"http://localhost:{port}/v1/chat/completions"
    client = HttpClient("fake", 10.0)
    try:
        for _ in range(3):
            async with client.open("POST", url, headers={}, body={}) as response:
                assert response.cookies["__cf_bm"].value == "one-users-session"
                await response.read()
    finally:
        await client.aclose()
        await runner.cleanup()
    assert cookies == [None, None, None]
