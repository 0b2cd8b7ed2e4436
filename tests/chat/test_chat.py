"""POST /chat: JSON and streaming turns, storage of both messages, context, refusals, hang-ups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ailab.config import Settings
from ailab.providers.local import LocalProvider
from tests.chat.conftest import parse_sse, sse_events, stream_then_hang_up
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI

LOCAL = "local/smollm2-135m-instruct"


async def messages_of(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/sessions/{session_id}/messages")
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["items"] if isinstance(body, dict) else body)


@pytest.mark.slow  # the embedded model
async def test_embedded_model_json_and_stream_with_context(client: httpx.AsyncClient) -> None:
    first = await client.post(
        "/chat", json={"message": "What is the capital of France?", "pipeline": "direct", "max_tokens": 8}
    )
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["status"] == "success"
    assert answer["error"] is None
    assert answer["response"].strip()
    session_id = answer["session_id"]

    second = await client.post(
        "/chat",
        json={
            "message": "And of Spain?",
            "session_id": session_id,
            "pipeline": "direct",
            "max_tokens": 8,
            "stream": True,
        },
    )
    assert second.status_code == 200
    assert second.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(second.text)
    assert events[-1] == "[DONE]"
    finals = [e for e in events[:-1] if e["type"] == "final"]
    deltas = [e for e in events[:-1] if e["type"] == "delta"]
    assert len(finals) == 1 and events[-2]["type"] == "final"
    assert deltas and all(d["agent"] is None for d in deltas)
    final = finals[0]
    assert final["response"] == "".join(d["delta"] for d in deltas)
    assert final["session_id"] == session_id
    assert final["usage"]["completion_tokens"] >= 1
    assert final["ttft_ms"] > 0

    rows = await messages_of(client, session_id)
    assert [(m["role"], m["status"]) for m in rows] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert rows[1]["content"] == answer["response"]
    assert rows[3]["content"] == final["response"]
    assert rows[3]["model"] == LOCAL
    # The first turn went to the model as context: the second prompt holds it.
    assert rows[3]["prompt_tokens"] > rows[1]["prompt_tokens"] + 5


async def test_earlier_turns_reach_the_upstream_as_context(
    upstream_client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    model = "openai-compat/echo"
    first = await upstream_client.post(
        "/chat", json={"message": "hello there", "model": model, "pipeline": "direct"}
    )
    assert first.json() == {
        "response": "echo: hello there",
        "status": "success",
        "error": None,
        "thought_process": None,
        "session_id": first.json()["session_id"],
        "run_id": first.headers["X-Run-Id"],
        "model": model,
        "usage": first.json()["usage"],
    }
    session_id = first.json()["session_id"]
    second = await upstream_client.post(
        "/chat",
        json={
            "message": "second",
            "model": model,
            "pipeline": "direct",
            "session_id": session_id,
            "stream": True,
        },
    )
    assert parse_sse(second.text)[-2]["response"] == "echo: second"
    sent = upstream.last.json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "hello there"),
        ("assistant", "echo: hello there"),
        ("user", "second"),
    ]
    assert upstream.last.json["model"] == "echo"
    rows = await messages_of(upstream_client, session_id)
    assert [m["role"] for m in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[3]["completion_tokens"] == 2  # "echo: ", "second"


@pytest.mark.slow  # the embedded model
async def test_long_history_is_trimmed_to_the_embedded_models_window(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=database_url, local_context=512)
    async with app_client(settings) as client:
        session_id = (await client.post("/sessions", json={})).json()["id"]
        for i in range(6):  # about 6 x 150 tokens: far more than the 512-token window
            content = f"note {i}: " + "apples and pears " * 50
            response = await client.post(
                f"/sessions/{session_id}/messages",
                json={"role": "user" if i % 2 == 0 else "assistant", "content": content},
            )
            assert response.status_code in (200, 201), response.text
        answer = await client.post(
            "/chat",
            json={"message": "Summarise.", "session_id": session_id, "pipeline": "direct", "max_tokens": 4},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "success"
        rows = await messages_of(client, session_id)
        # The newest notes fitted, the oldest did not, and the prompt stayed inside the window.
        assert 150 < rows[-1]["prompt_tokens"] <= 512 - 4


async def test_refused_requests_change_nothing(upstream_client: httpx.AsyncClient) -> None:
    bad_bodies = [
        ({"message": ""}, 422),
        ({"message": "hi", "max_tokens": 0, "pipeline": "direct"}, 422),
        ({"message": "hi", "temperature": 3.5, "pipeline": "direct"}, 422),
        ({"message": "hi", "session_id": "../etc", "pipeline": "direct"}, 422),
        ({"message": "hi", "pipeline": "no-such-pipeline"}, 404),
        ({"message": "hi", "pipeline": "direct", "model": "nowhere/model"}, 404),
    ]
    for body, status in bad_bodies:
        response = await upstream_client.post("/chat", json=body)
        assert response.status_code == status, (body, response.text)
        assert "detail" in response.json()
    unknown = await upstream_client.post("/chat", json={"message": "hi", "pipeline": "no-such-pipeline"})
    assert "direct" in unknown.json()["detail"]
    broken = await upstream_client.post(
        "/chat", content=b'{"message": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    # Bodies the fast lane declines go on to FastAPI, whose validation answers them.
    empty = await upstream_client.post("/chat", json={"message": ""})
    assert [e["loc"] for e in empty.json()["detail"]] == [["body", "message"]]
    form = await upstream_client.post(
        "/chat", content=b"message=hi", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415  # a body that is not JSON: what a web page could send unasked
    assert (await upstream_client.post("/chat")).status_code == 422
    sessions = await upstream_client.get("/sessions")
    assert sessions.json()["items"] == []


async def test_another_users_session_is_not_found(upstream_client: httpx.AsyncClient) -> None:
    services = upstream_client.services  # type: ignore[attr-defined]
    owner = await upstream_client.post(
        "/chat", json={"message": "mine", "model": "openai-compat/echo", "pipeline": "direct"}
    )
    session_id = owner.json()["session_id"]
    await services.auth.create_user("mallory", "mallory-password")
    token = await services.auth.login("mallory", "mallory-password")
    response = await upstream_client.post(
        "/chat",
        json={
            "message": "let me in",
            "session_id": session_id,
            "model": "openai-compat/echo",
            "pipeline": "direct",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 404
    assert len(await messages_of(upstream_client, session_id)) == 2


async def test_model_failure_after_the_turn_started_is_stored_as_error(
    upstream_client: httpx.AsyncClient,
) -> None:
    response = await upstream_client.post(
        "/chat", json={"message": "hi", "model": "openai-compat/missing", "pipeline": "direct"}
    )
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == "error" and "missing" in body["error"]
    rows = await messages_of(upstream_client, body["session_id"])
    assert [(m["role"], m["status"]) for m in rows] == [("user", "complete"), ("assistant", "error")]

    streamed = await upstream_client.post(
        "/chat",
        json={"message": "hi", "model": "openai-compat/missing", "pipeline": "direct", "stream": True},
    )
    events = parse_sse(streamed.text)
    assert events[-2]["type"] == "error" and "missing" in events[-2]["error"]
    assert events[-1] == "[DONE]"


async def test_a_client_that_hangs_up_does_not_stop_the_run_and_resumes_it_by_last_event_id(
    upstream_client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.stall_after = 2  # two pieces, then nothing until released
    seen = await stream_then_hang_up(
        upstream_client,
        {"message": "count to three", "model": "openai-compat/echo", "pipeline": "direct", "stream": True},
        after_deltas=2,
    )
    assert seen.status == 200
    assert seen.headers["x-run-id"] == seen.run_id
    assert seen.deltas == ["echo: ", "count "]
    assert not upstream.disconnected.is_set()  # the run still reads the upstream
    run = (await upstream_client.get(f"/runs/{seen.run_id}")).json()
    assert run["status"] == "running" and run["session_id"] == seen.events[0]["session_id"]

    upstream.release.set()
    last_id = seen.ids[-1]
    assert last_id is not None
    resumed = await upstream_client.get(
        f"/runs/{seen.run_id}/events", headers={"Last-Event-ID": str(last_id)}
    )
    assert resumed.status_code == 200
    events = sse_events(resumed.text)
    assert events[0][0] == last_id + 1  # no gap, no repeat
    rest = [e for _, e in events if isinstance(e, dict) and e["type"] == "delta"]
    assert "".join(seen.deltas) + "".join(e["delta"] for e in rest) == "echo: count to three"
    assert events[-2][1]["type"] == "final" and events[-1][1] == "[DONE]"

    run = (await upstream_client.get(f"/runs/{seen.run_id}")).json()
    assert run["status"] == "done" and run["last_event_id"] == events[-2][0]
    rows = await messages_of(upstream_client, run["session_id"])
    assert [(m["role"], m["status"], m["content"]) for m in rows] == [
        ("user", "complete", "count to three"),
        ("assistant", "complete", "echo: count to three"),
    ]


@pytest.mark.slow  # the embedded model
async def test_cancel_stops_the_embedded_model_within_a_token(client: httpx.AsyncClient) -> None:
    services = client.services  # type: ignore[attr-defined]
    local = services.providers.providers["local"]
    assert isinstance(local, LocalProvider)
    body = {"message": "Write a very long story about a dragon.", "pipeline": "direct", "max_tokens": 400}
    seen = await stream_then_hang_up(client, {**body, "stream": True}, after_deltas=3)
    cancelled = await client.post(f"/runs/{seen.run_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    # The next request runs only after the worker thread is free again: the first generation stopped.
    after = await client.post("/chat", json={"message": "Hi", "pipeline": "direct", "max_tokens": 2})
    assert after.json()["status"] == "success"
    stopped_at = local.tokens_generated - after.json()["usage"]["completion_tokens"]

    replay = sse_events((await client.get(f"/runs/{seen.run_id}/events")).text)
    deltas = [e["delta"] for _, e in replay if isinstance(e, dict) and e["type"] == "delta"]
    produced = "".join(deltas)
    # Generation stopped within a token of the last one it sent (a delta holds at least one token).
    assert len(deltas) <= stopped_at <= len(deltas) + 2, (stopped_at, len(deltas))
    session_id = seen.events[0]["session_id"]
    assert replay[-2][1] == {"type": "cancelled", "response": produced, "session_id": session_id}
    rows = await messages_of(client, session_id)
    assert [(m["role"], m["status"]) for m in rows] == [("user", "complete"), ("assistant", "cancelled")]
    assert rows[1]["content"] == produced
