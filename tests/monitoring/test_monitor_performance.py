"""@monitor_performance on sync and async functions: explicit sink, active monitor, inside a request."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ailab.services.container import Services
from ailab.services.monitoring.performance import monitor_performance
from tests.monitoring.helpers import scrape, value

COUNT = "ailab_function_duration_seconds_count"


@monitor_performance("tests.double")
def double(x: int) -> int:
    return 2 * x


@monitor_performance("tests.slow_add")
async def slow_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@monitor_performance("tests.fails")
async def fails() -> None:
    raise ValueError("boom")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, bool]] = []

    def observe_function(self, name: str, duration_s: float, *, ok: bool) -> None:
        self.calls.append((name, duration_s, ok))


async def test_explicit_sink_sync_and_async() -> None:
    recorder = Recorder()
    triple = monitor_performance("tests.triple", sink=recorder)(lambda x: 3 * x)

    @monitor_performance("tests.echo", sink=recorder)
    async def echo(text: str) -> str:
        return text

    assert triple(2) == 6
    assert await echo("hi") == "hi"
    assert [(n, ok) for n, _, ok in recorder.calls] == [("tests.triple", True), ("tests.echo", True)]
    assert all(d >= 0 for _, d, _ in recorder.calls)
    assert echo.__name__ == "echo"  # functools.wraps


async def test_without_an_active_monitor_functions_run_unmeasured() -> None:
    assert double(21) == 42
    assert await slow_add(1, 2) == 3


async def test_active_monitor_feeds_histogram_and_history(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    monitor = services.monitor
    with monitor.activate():
        assert double(4) == 8
        assert await slow_add(2, 3) == 5
        with pytest.raises(ValueError, match="boom"):
            await fails()
    assert double(5) == 10  # no longer active: not counted

    text = await scrape(client)
    assert value(text, COUNT, function="tests.double", outcome="ok") == 1
    assert value(text, COUNT, function="tests.slow_add", outcome="ok") == 1
    assert value(text, COUNT, function="tests.fails", outcome="error") == 1
    summary = (await client.get("/performance/summary")).json()
    assert summary["functions"]["tests.double"]["count"] == 1
    assert summary["functions"]["tests.fails"]["errors"] == 1


async def test_requests_activate_the_app_monitor(client: httpx.AsyncClient) -> None:
    app = client.app  # type: ignore[attr-defined]

    async def handler() -> dict[str, int]:
        return {"sum": await slow_add(20, 22), "double": await asyncio.to_thread(double, 3)}

    app.add_api_route("/test-only/perf", handler)
    response = await client.get("/test-only/perf")
    assert response.json() == {"sum": 42, "double": 6}
    text = await scrape(client)
    assert value(text, COUNT, function="tests.slow_add") == 1
    assert value(text, COUNT, function="tests.double") == 1  # the context follows into the thread
