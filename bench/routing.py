"""What routing through a model alias costs per request, without the network.

Routing sits on the gateway's hot path, so it must add microseconds, not milliseconds. This times, in
one process on stub providers that answer at once:

- ``resolve``: a ``provider/model`` id against an alias name (one more dict lookup);
- ``pick``: choosing a deployment among 2 and 8, by weight and least-busy;
- ``forward``: the gateway's pass-through (the hot path), a JSON answer and a stream read to its end,
  through the alias (sync check, pick, the attempt, accounting, the ``ailab_route_attempts_total``
  count) against the provider directly, with and without a per-attempt timeout; ``chat`` the same for
  the translated path;
- ``stream``: per chunk, a forwarded stream whose first chunk the alias read against the bare body.

Prints microseconds per operation (the best of ``--rounds``)::

    .venv/bin/python bench/routing.py [--n 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ailab.metrics import Metrics
from ailab.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    ModelInfo,
    ProviderHealth,
    UpstreamResponse,
)
from ailab.providers.registry import ProviderRegistry
from ailab.services.routing.config import CooldownSpec
from ailab.services.routing.cooldowns import CooldownBook
from ailab.services.routing.router import (
    AliasProvider,
    ForwardingAliasProvider,
    Pacing,
    Route,
    Target,
    _Resumed,
)


class Instant:
    """A provider that answers at once (what routing adds is all that is measured)."""

    name = "stub"

    async def chat(self, request: ChatRequest) -> ChatResult:
        return ChatResult(content="hi", model=request.model)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        yield ChatChunk(delta="hi")

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def health(self) -> ProviderHealth:
        return ProviderHealth(ok=True)

    async def aclose(self) -> None:
        return None

    async def forward_chat_completions(self, payload: dict[str, Any]) -> UpstreamResponse:
        if payload.get("stream"):
            return UpstreamResponse(200, "text/event-stream", Body(3))
        return UpstreamResponse(200, "application/json", Body(1))


METRICS = Metrics()  # the server counts every attempt: so does the benchmark


def alias(deployments: int, *, least_busy: bool = False, timeout_s: float | None = None) -> AliasProvider:
    book = CooldownBook(time.monotonic)
    provider = Instant()
    targets = tuple(
        Target(f"stub/m{i}", provider, f"m{i}", 1.0 + i, book.state(f"stub/m{i}")) for i in range(deployments)
    )
    route = Route("fast", targets, (), least_busy, 1, timeout_s, CooldownSpec())
    return ForwardingAliasProvider(route, book, Pacing(time.monotonic), METRICS.observe_route_attempt)


def timed(n: int, rounds: int, body: Callable[[int], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        body(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


async def atimed(n: int, rounds: int, body: Callable[[int], Awaitable[None]]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        await body(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


class Body:
    """An upstream body of ``n`` chunks."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        if self.left == 0:
            raise StopAsyncIteration
        self.left -= 1
        return b"data: {}\n\n"

    async def aclose(self) -> None:
        return None


async def ignore(_exc: BaseException) -> None:
    return None


async def main(n: int, rounds: int) -> None:
    registry = ProviderRegistry([Instant()])
    registry.aliases = {"fast": alias(2)}
    rows: list[tuple[str, float]] = []

    def resolve_model(count: int) -> None:
        for _ in range(count):
            registry.resolve("stub/m0")

    def resolve_alias(count: int) -> None:
        for _ in range(count):
            registry.resolve("fast")

    rows += [("resolve provider/model", timed(n, rounds, resolve_model))]
    rows += [("resolve alias", timed(n, rounds, resolve_alias))]

    for size in (2, 8):
        for least_busy in (False, True):
            routed = alias(size, least_busy=least_busy)
            clock = routed._pacing.clock

            def pick(count: int, routed: AliasProvider = routed, clock: Callable[[], float] = clock) -> None:
                tried: set[str] = set()
                for _ in range(count):
                    routed._pick(tried, clock())

            strategy = "least-busy" if least_busy else "weighted"
            rows.append((f"pick of {size}, {strategy}", timed(n, rounds, pick)))

    request = ChatRequest(model="fast", messages=[])
    provider = Instant()

    async def read(upstream: UpstreamResponse) -> None:
        async for _chunk in upstream.body:
            pass
        await upstream.body.aclose()  # type: ignore[attr-defined]

    for stream in (False, True):
        payload = {"model": "fast", "messages": [], "stream": stream}
        kind = "stream" if stream else "JSON"

        async def forward_direct(count: int, payload: dict[str, Any] = payload) -> None:
            for _ in range(count):
                await read(await provider.forward_chat_completions(payload))

        rows.append((f"forward {kind}, provider directly", await atimed(n, rounds, forward_direct)))
        for timeout_s in (None, 30.0):
            routed = alias(2, timeout_s=timeout_s)

            async def forward_alias(
                count: int, routed: ForwardingAliasProvider = routed, payload: dict[str, Any] = payload
            ) -> None:
                for _ in range(count):
                    await read(await routed.forward_chat_completions(payload))

            label = f"forward {kind} through a 2-deployment alias" + (", timeout set" if timeout_s else "")
            rows.append((label, await atimed(n, rounds, forward_alias)))

    async def direct(count: int) -> None:
        for _ in range(count):
            await provider.chat(request)

    rows.append(("chat, provider directly", await atimed(n, rounds, direct)))
    routed_chat = alias(2)

    async def through(count: int) -> None:
        for _ in range(count):
            await routed_chat.chat(request)

    rows.append(("chat through a 2-deployment alias", await atimed(n, rounds, through)))

    chunks = 1000
    state = alias(1).route.deployments[0].state

    async def bare(count: int) -> None:
        for _ in range(count // chunks):
            async for _chunk in Body(chunks):
                pass

    async def resumed(count: int) -> None:
        for _ in range(count // chunks):
            body: Any = Body(chunks)
            state.in_flight += 1
            wrapped = _Resumed(await body.__anext__(), body, state, ignore)
            async for _chunk in wrapped:
                pass
            await wrapped.aclose()

    per_chunk_bare = await atimed(n, rounds, bare)
    per_chunk_resumed = await atimed(n, rounds, resumed)
    rows.append(("stream chunk, bare body", per_chunk_bare))
    rows.append(("stream chunk, through the alias's body", per_chunk_resumed))

    width = max(len(label) for label, _ in rows)
    print(f"{'operation':<{width}}  µs/op")
    for label, micros in rows:
        print(f"{label:<{width}}  {micros:6.3f}")
    table = dict(rows)
    print()
    for kind in ("JSON", "stream"):
        added = (
            table[f"forward {kind} through a 2-deployment alias"]
            - table[f"forward {kind}, provider directly"]
        )
        print(f"routing adds {added:.2f} µs to a forwarded {kind} request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runner: Callable[[Any], Any] = asyncio.run
    try:
        import uvloop  # the loop the server runs on

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        pass
    runner(main(args.n, args.rounds))
