"""Budgets: admins set them per user or API token and period; past one, /v1 answers 429 in OpenAI's shape
(``insufficient_quota``) and /chat 429 ``{"detail"}``, both with ``Retry-After`` and before anything is
sent upstream or stored; a budget renews when its period ends."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.usage.conftest import EMBEDDING_MODEL, MODEL, add_user, chat_body, new_token, sdk

MESSAGES: Any = [{"role": "user", "content": "one two three"}]
COMPLETION = {"model": MODEL, "messages": MESSAGES}
NOON = 1_899_979_200.0  # 2030-03-17 12:00:00 UTC


def frozen(client: httpx.AsyncClient, at: float) -> list[float]:
    """Set the app's usage clock to ``at``; move it through the returned list."""
    now = [at]
    client.services.usage.clock = lambda: now[0]  # type: ignore[attr-defined]
    return now


async def test_a_spent_budget_refuses_v1_and_chat_before_anything_is_sent_or_stored(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    frozen(client, NOON + 15 * 60)  # 12:15: the day renews in 11 h 45 min
    alice = await add_user(client, "alice")
    _, secret = await new_token(client, alice)
    budget = await client.put("/usage/limits/user/alice/day", json={"max_requests": 2})
    assert budget.status_code == 200, budget.text
    assert budget.json() | {"id": None} == {
        "kind": "user",
        "id": None,
        "name": "alice",
        "owner": "alice",
        "period": "day",
        "max_requests": 2,
        "max_tokens": None,
        "used_requests": 0,
        "used_tokens": 0,
        "resets_at": "2030-03-18T00:00:00+00:00",
    }
    assert budget.json()["id"] == alice.id

    async with sdk(client, secret) as openai_sdk:
        await openai_sdk.chat.completions.create(**COMPLETION)
        assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200
        sent = len(upstream.requests)

        with pytest.raises(openai.RateLimitError) as refused:
            await openai_sdk.chat.completions.create(**COMPLETION)
        assert refused.value.status_code == 429
        assert refused.value.code == "insufficient_quota"
        error = refused.value.body
        assert isinstance(error, dict) and error["type"] == "insufficient_quota"
        assert error["message"] == (
            "your usage budget is spent: 2 of 2 requests today; it renews at 2030-03-18T00:00:00+00:00"
        )
        assert refused.value.response.headers["Retry-After"] == str(11 * 3600 + 45 * 60)
        with pytest.raises(openai.RateLimitError):
            await openai_sdk.embeddings.create(model=EMBEDDING_MODEL, input="four")
        with pytest.raises(openai.RateLimitError):
            await openai_sdk.chat.completions.create(**COMPLETION, stream=True)

    sessions_before = (await client.get("/sessions", headers=alice.headers)).json()["items"]
    for stream in (False, True):
        chat = await client.post("/chat", json=chat_body(stream=stream), headers=alice.headers)
        assert chat.status_code == 429
        assert chat.json() == {
            "detail": "your usage budget is spent: 2 of 2 requests today; it renews at 2030-03-18T00:00:00+00:00"
        }
        assert chat.headers["Retry-After"] == str(11 * 3600 + 45 * 60)
    assert (await client.get("/sessions", headers=alice.headers)).json()["items"] == sessions_before
    assert len(upstream.requests) == sent  # nothing of the refused requests reached the upstream

    # The admin has no budget; the refusals are counted per model under outcome "limited".
    assert (await client.post("/v1/chat/completions", json=COMPLETION)).status_code == 200
    metrics = (await client.get("/metrics/prometheus")).text
    assert 'ailab_llm_requests_total{model="echo",outcome="limited",provider="openai-compat"} 4.0' in metrics
    limited_embeddings = 'model="text-embedding-3-small",outcome="limited",provider="openai-compat"} 1.0'
    assert limited_embeddings in metrics
    assert 'ailab_llm_requests_total{model="echo",outcome="ok",provider="openai-compat"} 3.0' in metrics

    listed = (await client.get("/usage/limits", headers=alice.headers)).json()["items"]
    assert [(i["name"], i["used_requests"], i["used_tokens"] > 0) for i in listed] == [("alice", 2, True)]


async def test_a_token_budget_limits_that_token_only(client: httpx.AsyncClient) -> None:
    alice = await add_user(client, "alice")
    token_id, secret = await new_token(client, alice, "batch job")
    _, other = await new_token(client, alice, "notebook")
    set_budget = await client.put(f"/usage/limits/token/{token_id}/hour", json={"max_tokens": 5})
    assert set_budget.status_code == 200
    assert (set_budget.json()["name"], set_budget.json()["owner"]) == ("batch job", "alice")

    async with sdk(client, secret) as limited, sdk(client, other) as free:
        done = await limited.chat.completions.create(**COMPLETION)  # allowed: its tokens are known after
        assert done.usage is not None and done.usage.total_tokens > 5
        with pytest.raises(openai.RateLimitError) as refused:
            await limited.chat.completions.create(**COMPLETION)
        assert refused.value.code == "insufficient_quota"
        assert str(refused.value.body["message"]).startswith("this API token's usage budget is spent")  # type: ignore[index]
        assert (await free.chat.completions.create(**COMPLETION)).usage is not None
    assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200


async def test_a_budget_renews_when_its_period_ends(client: httpx.AsyncClient) -> None:
    now = frozen(client, NOON + 3600 - 30)  # 12:59:30
    alice = await add_user(client, "alice")
    assert (await client.put("/usage/limits/user/alice/hour", json={"max_requests": 1})).status_code == 200
    assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200
    refused = await client.post("/chat", json=chat_body(), headers=alice.headers)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"

    now[0] = NOON + 3600  # 13:00: a new hour, before any sync has run
    assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200
    again = await client.post("/chat", json=chat_body(), headers=alice.headers)
    assert again.status_code == 429 and again.headers["Retry-After"] == "3600"
    # After a sync the shared totals are of the new hour too: still one request in it.
    await client.services.usage.sync(limits=True)  # type: ignore[attr-defined]
    listed = (await client.get("/usage/limits")).json()["items"]
    assert [(i["used_requests"], i["resets_at"]) for i in listed] == [(1, "2030-03-17T14:00:00+00:00")]
    now[0] = NOON + 2 * 3600
    assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200


async def test_a_budget_counts_usage_from_before_it_was_set_and_ends_when_deleted(
    client: httpx.AsyncClient,
) -> None:
    alice = await add_user(client, "alice")
    for _ in range(2):
        assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200
    await client.services.usage.sync()  # type: ignore[attr-defined]  # stored, as after a restart
    assert (await client.put("/usage/limits/user/alice/month", json={"max_requests": 2})).status_code == 200
    assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 429
    assert (await client.delete("/usage/limits/user/alice/month")).status_code == 204
    assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200
    assert (await client.delete("/usage/limits/user/alice/month")).status_code == 404


async def test_only_admins_set_budgets_and_invalid_ones_change_nothing(client: httpx.AsyncClient) -> None:
    alice = await add_user(client, "alice")
    bob = await add_user(client, "bob")
    token_id, _ = await new_token(client, bob)
    assert (await client.put("/usage/limits/user/bob/day", json={"max_tokens": 1000})).status_code == 200
    assert (
        await client.put(f"/usage/limits/token/{token_id}/hour", json={"max_requests": 9})
    ).status_code == 200

    for method, path, body in [
        ("PUT", "/usage/limits/user/alice/day", {"max_requests": 100}),
        ("DELETE", "/usage/limits/user/bob/day", None),
    ]:
        answer = await client.request(method, path, json=body, headers=alice.headers)
        assert answer.status_code == 403, answer.text
    for path, body in [
        ("/usage/limits/user/alice/day", {}),
        ("/usage/limits/user/alice/day", {"max_requests": None, "max_tokens": None}),
        ("/usage/limits/user/alice/day", {"max_requests": 0}),
        ("/usage/limits/user/alice/day", {"max_tokens": -5}),
        ("/usage/limits/user/alice/day", {"max_tokens": "many"}),
        ("/usage/limits/group/alice/day", {"max_requests": 1}),
        ("/usage/limits/user/alice/week", {"max_requests": 1}),
    ]:
        answer = await client.put(path, json=body)
        assert answer.status_code == 422, (path, body, answer.text)
    for path in ["/usage/limits/user/nobody/day", "/usage/limits/token/no-such-token/day"]:
        answer = await client.put(path, json={"max_requests": 1})
        assert answer.status_code == 404, answer.text

    everyone = (await client.get("/usage/limits")).json()["items"]
    assert {(i["kind"], i["name"], i["owner"], i["period"]) for i in everyone} == {
        ("user", "bob", "bob", "day"),
        ("token", "sdk", "bob", "hour"),
    }
    assert (await client.get("/usage/limits", headers=alice.headers)).json() == {"items": []}
    assert len((await client.get("/usage/limits", headers=bob.headers)).json()["items"]) == 2
