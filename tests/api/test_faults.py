"""Faults: the database going away under concurrent writers, upstreams that stall, reset or answer
garbage. Nothing acknowledged is lost or doubled, and every failure is a clear 5xx, never a 500."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx

from ailab.config import Settings
from tests.chat.conftest import parse_sse
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.monitoring.helpers import value
from tests.support.provider_settings import configure
from tests.support.tcpproxy import TcpProxy

WRITERS = 16


async def test_writers_through_a_database_outage_lose_and_double_nothing_acknowledged(
    postgres_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    proxy, proxied = await TcpProxy.in_front_of(postgres_url)
    acknowledged: list[str] = []
    statuses: Counter[int] = Counter()
    enough_before, enough_during, restored = asyncio.Event(), asyncio.Event(), asyncio.Event()
    after_restore: Counter[int] = Counter()

    async with app_client(make_settings(database_url=proxied)) as client:
        sessions = [
            (await client.post("/sessions", json={"title": f"w{i}"})).json()["id"] for i in range(WRITERS)
        ]

        async def writer(index: int) -> None:
            for attempt in range(400):
                content = f"writer {index} message {attempt}"
                response = await client.post(
                    f"/sessions/{sessions[index]}/messages", json={"role": "user", "content": content}
                )
                statuses[response.status_code] += 1
                if response.status_code == 201:
                    acknowledged.append(content)
                    if restored.is_set():
                        after_restore[index] += 1
                        if after_restore[index] >= 5:
                            return
                else:
                    assert response.status_code == 503, response.text  # a clean refusal, never a 500
                    assert response.json()["detail"] == "database unavailable"
                if len(acknowledged) >= 3 * WRITERS:
                    enough_before.set()
                if statuses[503] >= WRITERS:
                    enough_during.set()
                await asyncio.sleep(0)  # let the others write too

        async def outage() -> None:
            await enough_before.wait()
            await proxy.cut()  # the database goes away mid-write
            await enough_during.wait()
            await proxy.start()  # and comes back
            restored.set()

        await asyncio.gather(outage(), *(writer(i) for i in range(WRITERS)))
        assert statuses[503] >= WRITERS and set(statuses) <= {201, 503}
        assert all(after_restore[i] >= 5 for i in range(WRITERS))  # the server recovered by itself

        stored: list[str] = []
        for session_id in sessions:
            items = (await client.get(f"/sessions/{session_id}/messages", params={"limit": 1000})).json()[
                "items"
            ]
            stored += [m["content"] for m in items]
    await proxy.cut()  # closes the last connections
    doubled = [content for content, n in Counter(stored).items() if n > 1]
    assert doubled == []
    assert set(acknowledged) <= set(stored)  # every acknowledged message is there, exactly once


async def test_an_upstream_that_stalls_is_504_and_the_partial_answer_is_stored_and_marked(
    app_client: AppClientFactory, settings: Settings, upstream: FakeOpenAI
) -> None:
    overrides = {"openai_compat_base_url": upstream.base_url, "provider_timeout_seconds": 0.5}
    async with app_client(configure(settings, **overrides)) as client:
        upstream.stall_after = 1  # one piece, then nothing
        body = {"message": "tell me", "model": "openai-compat/echo", "pipeline": "direct"}
        stalled = await client.post("/chat", json=body)
        assert stalled.status_code == 504
        assert stalled.json()["status"] == "error" and "did not answer within 0.5s" in stalled.json()["error"]
        streamed = await client.post("/chat", json={**body, "stream": True})
        events = parse_sse(streamed.text)
        assert events[-2]["type"] == "error" and events[-1] == "[DONE]"
        gateway = await client.post(
            "/v1/chat/completions",
            json={
                "model": "openai-compat/echo",
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            },
        )
        gateway_events = parse_sse(gateway.text)
        assert gateway_events[-2]["error"]["code"] == "upstream_timeout" and gateway_events[-1] == "[DONE]"
        await client.services.chat.wait_idle()  # type: ignore[attr-defined]
        for session in (await client.get("/sessions")).json()["items"]:
            messages = (await client.get(f"/sessions/{session['id']}/messages")).json()["items"]
            assert [(m["role"], m["status"]) for m in messages] == [
                ("user", "complete"),
                ("assistant", "error"),
            ]
            assert messages[1]["content"] == "echo: "  # what came before the stall


async def test_an_upstream_that_resets_mid_stream_is_502_and_the_partial_answer_is_kept(
    upstream_client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.drop_after = 2  # two pieces, then the connection is cut
    body = {"message": "one two three", "model": "openai-compat/echo", "pipeline": "direct"}
    reset = await upstream_client.post("/chat", json=body)
    assert reset.status_code == 502 and reset.json()["status"] == "error"
    streamed = parse_sse((await upstream_client.post("/chat", json={**body, "stream": True})).text)
    assert [e["delta"] for e in streamed if e != "[DONE]" and e["type"] == "delta"] == ["echo: ", "one "]
    assert streamed[-2]["type"] == "error"
    await upstream_client.services.chat.wait_idle()  # type: ignore[attr-defined]
    session = (await upstream_client.get("/sessions")).json()["items"][0]
    messages = (await upstream_client.get(f"/sessions/{session['id']}/messages")).json()["items"]
    assert messages[1]["status"] == "error" and messages[1]["content"] == "echo: one "


async def test_an_upstream_whose_usage_is_no_count_is_passed_on_counted_as_none(
    upstream_client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.odd_usage = {"prompt_tokens": "many", "completion_tokens": [3], "total_tokens": -1}
    body = {"model": "openai-compat/echo", "messages": [{"role": "user", "content": "x"}]}
    answer = await upstream_client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"] == upstream.odd_usage  # the upstream's answer, as it came
    streamed = await upstream_client.post(
        "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert parse_sse(streamed.text)[-2]["usage"] == upstream.odd_usage
    scraped = (await upstream_client.get("/metrics/prometheus")).text
    assert value(scraped, "ailab_llm_requests_total", model="echo", outcome="ok") == 2
    assert value(scraped, "ailab_llm_tokens_total", model="echo") == 0  # no count was reported


async def test_an_upstream_that_answers_garbage_is_502(
    upstream_client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.garbage = True  # 200, but not JSON (an HTML error page, a broken proxy)
    chat = await upstream_client.post(
        "/chat", json={"message": "hi", "model": "openai-compat/echo", "pipeline": "direct"}
    )
    assert chat.status_code == 502 and chat.json()["status"] == "error"
    for stream in (False, True):
        gateway = await upstream_client.post(
            "/v1/chat/completions",
            json={
                "model": "openai-compat/echo",
                "messages": [{"role": "user", "content": "x"}],
                "stream": stream,
            },
        )
        assert gateway.status_code == 502, gateway.text
        assert "invalid" in gateway.json()["error"]["message"]
