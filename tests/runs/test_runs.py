"""Runs: a ``/chat`` turn outlives its connection. Replay and resume, cancel, ownership, the per-user
limit, and a restart of the app, on SQLite and PostgreSQL, against a fake OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from ailab.config import Settings
from ailab.db.tables import Run
from ailab.services.auth.accounts import Principal
from ailab.services.chat.service import ChatInput
from ailab.services.runs.service import fail_with_answers
from tests.chat.conftest import HangUp, asgi_stream, sse_events, stream_then_hang_up
from tests.conftest import AppClientFactory, bearer
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure

MODEL = "openai-compat/echo"


def chat_body(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "model": MODEL, "pipeline": "direct", **extra}


@pytest.fixture
def runs_settings(
    make_settings: Callable[..., Settings], any_database_url: str, upstream: FakeOpenAI
) -> Callable[..., Settings]:
    """Settings on a fresh database of either kind, ``openai-compat`` pointing at the upstream."""

    def build(**overrides: Any) -> Settings:
        settings = make_settings(database_url=any_database_url, **overrides)
        return configure(settings, openai_compat_base_url=upstream.base_url)

    return build


@pytest.fixture
async def client(
    runs_settings: Callable[..., Settings], app_client: AppClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(runs_settings()) as c:
        yield c


async def as_user(client: httpx.AsyncClient, name: str, role: str = "user") -> dict[str, str]:
    services = client.services  # type: ignore[attr-defined]
    user = await services.auth.create_user(name, f"a-password-for-{name}", role)
    return bearer(services, Principal(user.id, user.name, user.role))


async def test_a_finished_run_replays_the_same_events_and_after_a_restart_from_its_record(
    runs_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    settings = runs_settings()
    async with app_client(settings) as client:
        streamed = await client.post("/chat", json=chat_body("count to three", stream=True))
        run_id = streamed.headers["X-Run-Id"]
        live = sse_events(streamed.text)
        assert live[0] == (1, {"type": "run", "run_id": run_id, "session_id": live[0][1]["session_id"]})
        final_id, final = live[-2]
        assert final["type"] == "final" and final["response"] == "echo: count to three"

        replay = await client.get(f"/runs/{run_id}/events")
        assert replay.status_code == 200 and sse_events(replay.text) == live
        after_final = await client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": str(final_id)})
        assert sse_events(after_final.text) == [(None, "[DONE]")]
        middle = await client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "2"})
        assert sse_events(middle.text) == live[2:]

        run = (await client.get(f"/runs/{run_id}")).json()
        assert run["status"] == "done" and run["last_event_id"] == final_id
        assert run["model"] == MODEL and run["pipeline"] == "direct" and run["finished_at"]

    async with app_client(settings) as restarted:  # nothing in memory: the stored record answers
        stored = sse_events((await restarted.get(f"/runs/{run_id}/events")).text, consecutive=False)
        assert [event_id for event_id, _ in stored] == [1, final_id, None]
        assert stored[1][1]["type"] == "final" and stored[1][1]["response"] == final["response"]
        assert stored[1][1]["usage"] == final["usage"]
        tail = await restarted.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": str(final_id - 1)})
        assert [e for _, e in sse_events(tail.text)] == [stored[1][1], "[DONE]"]


async def test_two_followers_of_a_live_run_see_every_event_once(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.stall_after = 2
    started = await stream_then_hang_up(client, chat_body("one two three", stream=True), after_deltas=1)
    follower = asyncio.create_task(asgi_stream(client, "GET", f"/runs/{started.run_id}/events"))
    late = asyncio.create_task(
        asgi_stream(
            client, "GET", f"/runs/{started.run_id}/events", headers={"Last-Event-ID": str(started.last_id)}
        )
    )
    await asyncio.wait_for(upstream.received.wait(), timeout=10)
    upstream.release.set()
    whole, resumed = await follower, await late
    assert whole.events[-1] == "[DONE]" and whole.events[-2]["type"] == "final"
    assert (
        whole.ids[: len(started.ids)] == started.ids and whole.events[: len(started.events)] == started.events
    )
    assert resumed.ids[:-1] == whole.ids[len(started.ids) : -1]  # from just after the hang-up, no repeat
    assert "".join(started.deltas) + "".join(resumed.deltas) == "echo: one two three"


async def test_cancel_stops_a_remote_run_and_stores_what_was_produced(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    await client.post("/chat", json=chat_body("warm up"))  # the model's window is known from here on
    upstream.received.clear()
    upstream.stall_after = 2
    session_id = (await client.post("/sessions", json={"title": "cancel me"})).json()["id"]
    waiting = asyncio.create_task(
        client.post("/chat", json=chat_body("count to three", session_id=session_id))
    )
    running = await wait_for_running(client, session_id)
    seen = await asgi_stream(
        client, "GET", f"/runs/{running['id']}/events", hang_up_when=lambda s: len(s.deltas) == 2
    )
    assert seen.deltas == ["echo: ", "count "]

    cancelled = await client.post(f"/runs/{running['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["error"] == "cancelled"
    await asyncio.wait_for(upstream.disconnected.wait(), timeout=10)  # its stream was closed
    reply = await waiting
    assert reply.status_code == 200
    assert reply.json()["status"] == "cancelled" and reply.json()["response"] == "echo: count "
    assert reply.headers["X-Run-Id"] == running["id"]

    messages = (await client.get(f"/sessions/{session_id}/messages")).json()["items"]
    assert [(m["role"], m["status"], m["content"]) for m in messages] == [
        ("user", "complete", "count to three"),
        ("assistant", "cancelled", "echo: count "),
    ]
    again = await client.post(f"/runs/{running['id']}/cancel")  # it has ended: nothing changes
    assert again.status_code == 202 and again.json() == cancelled.json()
    listed = (await client.get(f"/sessions/{session_id}/runs", params={"status": "cancelled"})).json()
    assert [r["id"] for r in listed["items"]] == [running["id"]]
    assert (await client.get(f"/sessions/{session_id}/runs", params={"status": "running"})).json()[
        "items"
    ] == []


async def wait_for_running(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    """The running run of a session whose /chat was just sent (its row is committed before the model
    is asked, so once the upstream has the request, the run is listed). The upstream's ``received``
    must be clear, and the model's context window known (asking for it is a request too)."""
    upstream_received: asyncio.Event = client.upstream.received  # type: ignore[attr-defined]
    await asyncio.wait_for(upstream_received.wait(), timeout=10)
    listed = (await client.get(f"/sessions/{session_id}/runs", params={"status": "running"})).json()
    assert len(listed["items"]) == 1, listed
    return dict(listed["items"][0])


@pytest.fixture(autouse=True)
def _upstream_on_client(request: pytest.FixtureRequest, upstream: FakeOpenAI) -> None:
    if "client" in request.fixturenames:
        request.getfixturevalue("client").upstream = upstream


async def test_only_the_owner_or_an_admin_sees_a_run(client: httpx.AsyncClient) -> None:
    bob, eve = await as_user(client, "bob"), await as_user(client, "eve")
    reply = await client.post("/chat", json=chat_body("mine"), headers=bob)
    run_id, session_id = reply.headers["X-Run-Id"], reply.json()["session_id"]
    assert (await client.get(f"/runs/{run_id}", headers=bob)).status_code == 200
    for method, path in [
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/events"),
        ("POST", f"/runs/{run_id}/cancel"),
        ("GET", f"/sessions/{session_id}/runs"),
    ]:
        refused = await client.request(method, path, headers=eve)
        assert refused.status_code == 404, (method, path, refused.text)
        assert (await client.request(method, path)).status_code in (200, 202)  # the admin
    unknown = await client.get("/runs/no-such-run")
    assert unknown.status_code == 404 and "no-such-run" in unknown.json()["detail"]
    bad = await client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "minus one"})
    assert bad.status_code == 422


async def test_a_user_at_the_limit_of_running_runs_gets_429_and_nothing_is_stored(
    runs_settings: Callable[..., Settings], app_client: AppClientFactory, upstream: FakeOpenAI
) -> None:
    async with app_client(runs_settings(max_runs_per_user=1)) as client:
        upstream.stall_after = 1
        first: HangUp = await stream_then_hang_up(client, chat_body("hold", stream=True), after_deltas=1)
        sessions_before = (await client.get("/sessions")).json()["items"]

        refused = await client.post("/chat", json=chat_body("one more"))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "AILAB_MAX_RUNS_PER_USER" in refused.json()["detail"]
        assert (await client.get("/sessions")).json()["items"] == sessions_before
        bob = await as_user(client, "bob")
        client.headers.update(bob)
        others = await stream_then_hang_up(client, chat_body("hi", stream=True), after_deltas=1)
        assert others.status == 200  # the limit is per user
        assert (await client.post(f"/runs/{others.run_id}/cancel")).json()["status"] == "cancelled"
        client.headers.update(bearer(client.services, await client.services.auth.local_admin()))  # type: ignore[attr-defined]

        assert (await client.post(f"/runs/{first.run_id}/cancel")).json()["status"] == "cancelled"
        upstream.stall_after = None
        assert (await client.post("/chat", json=chat_body("now"))).json()["status"] == "success"


async def test_the_final_event_goes_out_only_once_the_answer_is_stored(client: httpx.AsyncClient) -> None:
    services = client.services  # type: ignore[attr-defined]
    admin = await services.auth.local_admin()
    run = await services.runs.begin(
        admin.id, ChatInput("count to three", model=MODEL, pipeline="direct"), "r1"
    )
    async for chunk in run.events.follow(0):
        if b'"type":"final"' in chunk:
            # No await has let the storing task run since the event was written: it ran before.
            stored = await services.sessions.messages(admin.id, run.session_id)
            assert [(m.role, m.status, m.content) for m in stored][-1] == (
                "assistant",
                "complete",
                "echo: count to three",
            )
            assert (await services.runs.get(admin.id, True, run.id)).status == "done"
            break
    else:
        raise AssertionError("no final event")


async def test_a_sweep_that_finds_its_runs_failed_already_changes_nothing(client: httpx.AsyncClient) -> None:
    services = client.services  # type: ignore[attr-defined]
    assert await services.db.run_write(fail_with_answers, ["no-such-run"], "interrupted") == 0


async def test_upkeep_renews_the_lease_of_a_running_run(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    services = client.services  # type: ignore[attr-defined]
    upstream.stall_after = 1
    held = await stream_then_hang_up(client, chat_body("hold", stream=True), after_deltas=1)
    async with services.db.read() as session:
        before = (await session.get(Run, held.run_id)).lease_until
    await services.runs.maintain()
    async with services.db.read() as session:
        after = (await session.get(Run, held.run_id)).lease_until
    assert after > before
    assert (await services.runs.get("-", True, held.run_id)).status == "running"  # alive: not swept
    assert (await client.post(f"/runs/{held.run_id}/cancel")).json()["status"] == "cancelled"


async def test_a_turns_messages_and_agent_steps_name_its_run(client: httpx.AsyncClient) -> None:
    first = await client.post("/chat", json={"message": "One", "model": MODEL, "pipeline": "agents"})
    session_id = first.json()["session_id"]
    second = await client.post(
        "/chat", json={"message": "Two", "model": MODEL, "pipeline": "agents", "session_id": session_id}
    )
    await client.post(f"/sessions/{session_id}/messages", json={"role": "user", "content": "a note"})
    runs = [first.headers["X-Run-Id"], second.headers["X-Run-Id"]]
    assert first.status_code == second.status_code == 200 and runs[0] != runs[1]

    messages = (await client.get(f"/sessions/{session_id}/messages")).json()["items"]
    assert [(m["role"], m["run_id"]) for m in messages] == [
        ("user", runs[0]),
        ("assistant", runs[0]),
        ("user", runs[1]),
        ("assistant", runs[1]),
        ("user", None),  # not a turn: appended by hand
    ]
    states = (await client.get(f"/sessions/{session_id}/agent-states")).json()["items"]
    by_run = {run_id: [s["agent"] for s in states if s["run_id"] == run_id] for run_id in runs}
    assert all(by_run[run_id] and by_run[run_id][0] == "CEO" for run_id in runs), by_run
    assert sum(len(agents) for agents in by_run.values()) == len(states)
