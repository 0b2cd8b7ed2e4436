"""The model calls' own HTTP/1.1 client (``providers/http1.py``), against real sockets: a scripted
server that writes each answer's bytes itself (lengths, chunks, closes, stalls) and counts connections.
Every test runs on asyncio's loop and on uvloop's (the server's), whose transports differ (see
``pytest_asyncio_loop_factories`` in this folder's conftest)."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ailab.errors import ProviderTimeout, ProviderUnavailable
from ailab.providers import http1
from ailab.providers.transport import HttpClient, ResponseBody
from tests.support.postgres import free_port

Answerer = Callable[[asyncio.StreamWriter, int], Awaitable[None]]  # writes the n-th request's answer


def ok(body: bytes, *, extra: bytes = b"") -> bytes:
    """A whole 200 answer with a length."""
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        extra,
        len(body),
        body,
    )


class ScriptedServer:
    """Reads each request (head and ``Content-Length`` body) and lets ``answer`` write its answer."""

    def __init__(self, answer: Answerer, *, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.closed = asyncio.Event()  # a client closed a connection
        self.reader: asyncio.StreamReader | None = None  # the latest connection's
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.reader = reader
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append((head, await reader.readexactly(length)))
                await self.answer(writer, len(self.requests))
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()
        finally:
            writer.close()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/v1/chat/completions"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def serve(answer: Answerer, tls: ssl.SSLContext | None = None) -> ScriptedServer:
    return ScriptedServer(answer, tls=tls)


async def whole(writer: asyncio.StreamWriter, n: int) -> None:
    writer.write(ok(b'{"n": %d}' % n))
    await writer.drain()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient("fake", timeout_s=5.0)
    yield http
    await http.aclose()


async def post(client: HttpClient, url: str, *, stream: bool = False, body: bytes = b"{}") -> http1.Answer:
    answer = await client.raw_post(url, headers={"Authorization": "Bearer sk-test"}, body=body, stream=stream)
    assert isinstance(answer, http1.Answer)  # no proxy, no credentials in the URL: the own client
    return answer


async def test_a_request_goes_out_as_http_and_its_connection_is_kept_alive(client: HttpClient) -> None:
    async with serve(whole) as server:
        for n in (1, 2, 3):
            answer = await post(client, server.url + "?api-version=x&q=é ü", body=b'{"a": 1}')
            assert (answer.status, answer.headers["content-type"]) == (200, "application/json")
            assert await answer.read() == b'{"n": %d}' % n
            answer.release()
        assert server.connections == 1
        head, body = server.requests[0]
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /v1/chat/completions?api-version=x&q=%C3%A9%20%C3%BC HTTP/1.1"
        assert f"Host: {server.url.split('/')[2]}" in lines
        assert {"Authorization: Bearer sk-test", "Content-Type: application/json", "Content-Length: 8"} <= {
            *lines
        }
        assert body == b'{"a": 1}'


async def test_a_chunked_stream_is_read_as_it_arrives_then_the_connection_is_reused(
    client: HttpClient,
) -> None:
    pieces = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
    sent = [asyncio.Event() for _ in pieces]

    async def chunked(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for piece, event in zip(pieces, sent, strict=True):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            event.set()
            if n == 1:
                await asyncio.sleep(0)  # each piece its own write, the reader between two
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with serve(chunked) as server:
        answer = await post(client, server.url, stream=True)
        assert answer.headers["content-type"] == "text/event-stream"
        received = []
        while chunk := await answer.content.readany():
            received.append(chunk)
        assert b"".join(received) == b"".join(pieces)
        assert answer.content.is_eof()
        answer.release()
        again = await post(client, server.url, stream=True)
        assert await again.read() == b"".join(pieces)
        again.release()
        assert server.connections == 1


@pytest.mark.parametrize(
    "answer_bytes",
    [
        ok(b"{}", extra=b"Connection: close\r\n"),  # the upstream says it closes
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}",  # no length: ends with the close
    ],
    ids=["connection-close", "until-close"],
)
async def test_an_answer_the_upstream_closes_after_is_read_and_not_pooled(
    client: HttpClient, answer_bytes: bytes
) -> None:
    async def closing(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(answer_bytes)
        await writer.drain()
        writer.close()

    async with serve(closing) as server:
        for _ in range(2):
            answer = await post(client, server.url)
            assert await answer.read() == b"{}"
            answer.release()
        assert server.connections == 2


async def test_releasing_twice_or_closing_after_gives_the_connection_back_once(client: HttpClient) -> None:
    async with serve(whole) as server:
        answer = await post(client, server.url)
        assert await answer.read() == b'{"n": 1}'
        answer.release()
        answer.release()  # as the pass-through does: at the body's end, then when it closes the body
        answer.close()
        both = asyncio.gather(post(client, server.url), post(client, server.url))
        first, second = await asyncio.wait_for(both, 5)  # each on a connection of its own
        assert {await first.read(), await second.read()} == {b'{"n": 2}', b'{"n": 3}'}
        assert server.connections == 2


async def test_a_connection_the_upstream_closed_while_idle_is_not_used_again(client: HttpClient) -> None:
    async def once(writer: asyncio.StreamWriter, n: int) -> None:
        await whole(writer, n)
        writer.close()  # after a kept-alive answer: as an upstream's idle timeout does

    async with serve(once) as server:
        first = await post(client, server.url)
        assert await first.read() == b'{"n": 1}'
        first.release()
        pool = next(iter(client._pools.values()))
        while pool._idle and not pool._idle[0].closed:  # the close reaches the client
            await asyncio.sleep(0.001)
        second = await post(client, server.url)
        assert await second.read() == b'{"n": 2}'
        assert server.connections == 2


async def test_connections_idle_past_the_keep_alive_are_closed_not_reused(
    client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "KEEPALIVE_S", 0.0)  # every idle connection is past it at once
    async with serve(whole) as server:
        first, second = await asyncio.gather(post(client, server.url), post(client, server.url))
        for answer in (first, second):
            await answer.read()
            answer.release()  # the second's release closes the first's idle connection
        await asyncio.wait_for(server.closed.wait(), 5)
        third = await post(client, server.url)  # the second's is too old to reuse: a new one
        assert await third.read() == b'{"n": 3}'
        assert server.connections == 3


async def test_an_answer_cut_mid_body_fails_and_says_so(client: HttpClient) -> None:
    async def cut(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    async with serve(cut) as server:
        answer = await post(client, server.url)
        with pytest.raises(http1.UpstreamClosed):
            await answer.read()
        stream = await post(client, server.url, stream=True)
        with pytest.raises(ProviderUnavailable, match="unreachable"):  # as the pass-through reads it
            async for _ in ResponseBody(client, stream, server.url):
                pass


async def test_a_stream_that_stalls_past_the_timeout_is_a_provider_timeout() -> None:
    release = asyncio.Event()

    async def stall(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await release.wait()

    http = HttpClient("fake", timeout_s=0.2)
    try:
        async with serve(stall) as server:
            answer = await post(http, server.url, stream=True)
            body = ResponseBody(http, answer, server.url)
            assert await anext(body) == b"hello"
            with pytest.raises(ProviderTimeout):
                await anext(body)
            release.set()
    finally:
        await http.aclose()


async def test_a_caller_that_leaves_before_the_answer_closes_the_connection(client: HttpClient) -> None:
    async def late(writer: asyncio.StreamWriter, n: int) -> None:
        if n == 1:  # no answer: the client leaves first, which the next read sees
            assert server.reader is not None
            assert await server.reader.read() == b""
            server.closed.set()
            writer.close()
            return
        await whole(writer, n)

    async with serve(late) as server:
        waiting = asyncio.ensure_future(post(client, server.url))
        while not server.requests:
            await asyncio.sleep(0.001)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(server.closed.wait(), 5)  # the upstream sees the connection go
        answer = await post(client, server.url)  # a new connection serves the next call
        assert await answer.read() == b'{"n": 2}'
        assert server.connections == 2


async def test_past_the_limit_a_call_waits_for_a_connection() -> None:
    loop = asyncio.get_running_loop()
    async with serve(whole) as server:
        target = http1.Target(server.url)
        pool = http1.Pool(target, loop, limit=1, connect_timeout=5, tls=None)
        head = http1.request_head(target, {}, 2)
        first = await pool.post(server.url, head, b"{}", None)
        second = asyncio.ensure_future(pool.post(server.url, head, b"{}", None))
        for _ in range(100):  # a few turns of the loop: the second call is waiting by then
            if pool._waiters:
                break
            await asyncio.sleep(0)
        assert pool._waiters and not second.done() and len(server.requests) == 1  # it waits, sends nothing
        assert await first.read() == b'{"n": 1}'
        first.release()
        answer = await asyncio.wait_for(second, 5)
        assert await answer.read() == b'{"n": 2}'
        answer.release()
        assert server.connections == 1
        pool.close()


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(client: HttpClient) -> None:
    async with serve(whole) as server:
        with pytest.raises(ProviderUnavailable, match="line break"):
            await client.raw_post(
                server.url, headers={"Authorization": "Bearer sk\r\nX-Evil: 1"}, body=b"{}", stream=False
            )
        assert server.connections == 0


async def test_bytes_that_are_no_http_answer_fail_the_call_and_close_the_connection(
    client: HttpClient,
) -> None:
    async def garbage(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n" if n == 1 else ok(b"[]"))
        await writer.drain()

    async with serve(garbage) as server:
        with pytest.raises(ProviderUnavailable, match="an invalid HTTP answer"):
            await post(client, server.url)
        answer = await post(client, server.url)  # a new connection
        assert await answer.read() == b"[]"
        assert server.connections == 2


async def test_a_second_answer_to_one_request_closes_the_connection(client: HttpClient) -> None:
    async def twice(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(ok(b"{}") + ok(b'"smuggled"') if n == 1 else ok(b"[]"))
        await writer.drain()

    async with serve(twice) as server:
        first = await post(client, server.url)
        assert await first.read() == b"{}"
        first.release()
        answer = await post(client, server.url)  # never the smuggled answer: a new connection
        assert await answer.read() == b"[]"
        assert server.connections == 2


async def test_a_compressed_answer_is_read_and_an_unknown_encoding_refused(client: HttpClient) -> None:
    text = b'{"choices": []}' * 100
    gzipped = gzip.compress(text)

    async def compressed(writer: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            writer.write(ok(gzipped, extra=b"Content-Encoding: gzip\r\n"))
        elif n == 2:  # chunked, cut anywhere: decompressed as it arrives
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(gzipped), 50):
                piece = gzipped[start : start + 50]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(ok(b"...", extra=b"Content-Encoding: br\r\n"))
        await writer.drain()

    async with serve(compressed) as server:
        whole_answer = await post(client, server.url)
        assert await whole_answer.read() == text
        whole_answer.release()
        streamed = await post(client, server.url, stream=True)
        pieces = []
        while piece := await streamed.readany():
            pieces.append(piece)
        assert b"".join(pieces) == text
        streamed.release()
        assert server.connections == 1
        with pytest.raises(ProviderUnavailable, match=r"an encoding AI-Lab cannot read \(br\)"):
            await post(client, server.url)


async def test_a_refused_connection_is_unreachable(client: HttpClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    with pytest.raises(ProviderUnavailable, match="cannot connect"):
        await client.raw_post(url, headers={}, body=b"{}", stream=False)


async def test_a_large_body_and_a_large_answer_arrive_whole(client: HttpClient) -> None:
    big = b"y" * (3 * http1.HIGH_WATER_BYTES)

    async def echo_size(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(ok(b"%d" % len(server.requests[-1][1]) + big))
        await writer.drain()

    async with serve(echo_size) as server:
        body = b"x" * 200_000  # past the size sent with the head in one write
        answer = await post(client, server.url, body=body, stream=True)
        received = b""
        while chunk := await answer.readany():
            received += chunk
            await asyncio.sleep(0)  # a slow reader: the socket is paused past the high-water mark
        assert received == b"200000" + big
        answer.release()


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 with a self-signed certificate, and the certificate's file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ai-lab test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_tls_checks_the_upstreams_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert_file = self_signed(tmp_path)
    async with serve(whole, tls=context) as server:
        untrusting = HttpClient("fake", timeout_s=5.0)
        try:
            with pytest.raises(ProviderUnavailable, match="cannot connect"):
                await untrusting.raw_post(server.url, headers={}, body=b"{}", stream=False)
        finally:
            await untrusting.aclose()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # read by the default context when built
        trusting = HttpClient("fake", timeout_s=5.0)
        try:
            answer = await post(trusting, server.url)
            assert await answer.read() == b'{"n": 1}'
            answer.release()
        finally:
            await trusting.aclose()
