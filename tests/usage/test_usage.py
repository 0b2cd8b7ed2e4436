"""Usage is charged to the user, API token and model that caused it, through /v1 (the official SDK on an
API token) and /chat, stored in batches, and reported to each user (their own) and to admins (all)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from ailab.db.tables import UsageCount
from tests.chat.conftest import parse_sse
from tests.usage.conftest import EMBEDDING_MODEL, MODEL, add_user, admin_of, by, chat_body, new_token, sdk


async def _stored_rows(client: httpx.AsyncClient) -> int:
    def count(conn: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(UsageCount)).scalar_one())

    return int(await client.services.db.run_read(count))  # type: ignore[attr-defined]


async def test_usage_is_charged_to_its_user_token_and_model(client: httpx.AsyncClient) -> None:
    admin = await admin_of(client)
    alice = await add_user(client, "alice")
    token_id, secret = await new_token(client, alice)

    # Alice's script, with her API token: a completion, the same one streamed (no usage asked for: the
    # gateway asks the upstream for it anyway), and an embedding.
    async with sdk(client, secret) as openai_sdk:
        messages: Any = [{"role": "user", "content": "one two three"}]
        done = await openai_sdk.chat.completions.create(model=MODEL, messages=messages)
        assert done.usage is not None
        stream = await openai_sdk.chat.completions.create(model=MODEL, messages=messages, stream=True)
        assert (
            "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            == "echo: one two three"
        )
        embedded = await openai_sdk.embeddings.create(model=EMBEDDING_MODEL, input="four five")
    sdk_usage = (2, 2 * done.usage.prompt_tokens, 2 * done.usage.completion_tokens)

    # Alice in the browser (her access token): a JSON /chat turn, and a streamed one, whose run executes
    # in a task of its own.
    turn = await client.post("/chat", json=chat_body(), headers=alice.headers)
    assert turn.status_code == 200, turn.text
    streamed = await client.post("/chat", json=chat_body("six seven", stream=True), headers=alice.headers)
    final = next(e for e in parse_sse(streamed.text) if isinstance(e, dict) and e["type"] == "final")
    chat_usage = [turn.json()["usage"], final["usage"]]
    browser = (
        2,
        sum(u["prompt_tokens"] for u in chat_usage),
        sum(u["completion_tokens"] for u in chat_usage),
    )

    # The admin, once.
    mine = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
    assert mine.status_code == 200
    admin_usage = (1, mine.json()["usage"]["prompt_tokens"], mine.json()["usage"]["completion_tokens"])

    # Nothing was written on the requests' path: the counts wait in memory for the flush.
    assert await _stored_rows(client) == 0

    embedding = (1, embedded.usage.prompt_tokens, 0)
    alice_total = tuple(a + b + c for a, b, c in zip(sdk_usage, browser, embedding, strict=True))
    report = (await client.get("/usage", params={"group_by": "user"})).json()
    assert report["group_by"] == "user" and report["hours"] == 24
    assert by(report["items"], "user") == {"alice": alice_total, "admin": admin_usage}
    assert {i["user"]: i["user_id"] for i in report["items"]} == {"alice": alice.id, "admin": admin.id}
    assert await _stored_rows(client) == 4  # (user, token, model): her token x 2 models, her browser, admin

    tokens = (await client.get("/usage", params={"group_by": "token"})).json()["items"]
    sdk_total = tuple(a + b for a, b in zip(sdk_usage, embedding, strict=True))
    assert {
        (i["user"], i["token"], i["token_name"]): (i["requests"], i["prompt_tokens"], i["completion_tokens"])
        for i in tokens
    } == {
        ("alice", token_id, "sdk"): sdk_total,
        ("alice", None, None): browser,
        ("admin", None, None): admin_usage,
    }
    models = (await client.get("/usage", params={"group_by": "model"})).json()["items"]
    echo = tuple(a + b + c for a, b, c in zip(sdk_usage, browser, admin_usage, strict=True))
    assert by(models, "model") == {MODEL: echo, EMBEDDING_MODEL: embedding}
    assert all(i["user"] is None and i["token"] is None for i in models)

    # Alice sees her own usage only, whichever way she groups it; the admin picks one user with user=.
    for group_by, key, expected in [
        ("user", "user", {"alice": alice_total}),
        ("token", "token", {token_id: sdk_total, None: browser}),
    ]:
        seen = (await client.get("/usage", params={"group_by": group_by}, headers=alice.headers)).json()
        assert by(seen["items"], key) == expected
    her_models = (await client.get("/usage?group_by=model&user=alice", headers=alice.headers)).json()["items"]
    assert {i["model"] for i in her_models} == {MODEL, EMBEDDING_MODEL}
    assert by(her_models, "model")[MODEL][0] == 4  # the admin's request is not among hers
    picked = (await client.get("/usage", params={"user": "alice"})).json()["items"]
    assert by(picked, "user") == {"alice": alice_total}


async def test_a_user_cannot_read_another_users_usage(client: httpx.AsyncClient) -> None:
    alice = await add_user(client, "alice")
    await add_user(client, "bob")
    refused = await client.get("/usage", params={"user": "bob"}, headers=alice.headers)
    assert refused.status_code == 403 and "admins" in refused.json()["detail"]
    unknown = await client.get("/usage", params={"user": "nobody"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no user 'nobody'"


async def test_bad_usage_queries_are_refused(client: httpx.AsyncClient) -> None:
    for params in [
        {"group_by": "session"},
        {"hours": "0"},
        {"hours": "-1"},
        {"hours": "1e9"},
        {"hours": "x"},
    ]:
        answer = await client.get("/usage", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert isinstance(answer.json()["detail"], list)


async def test_a_window_counts_whole_hours_back_from_now(client: httpx.AsyncClient) -> None:
    usage = client.services.usage  # type: ignore[attr-defined]
    now = [1_899_997_200.0 + 1800]  # 2030-03-17 17:30 UTC
    usage.clock = lambda: now[0]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "one"}]}
    assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    now[0] += 2 * 3600  # 19:30: the request's hour (17:00) starts within 2 hours back (17:30 -> 17:00)
    windows = {hours: (await client.get("/usage", params={"hours": hours})).json() for hours in (1, 2)}
    assert windows[1]["items"] == [] and windows[1]["since"] == "2030-03-17T18:00:00+00:00"
    assert [(i["user"], i["requests"]) for i in windows[2]["items"]] == [("admin", 1)]
    assert windows[2]["since"] == "2030-03-17T17:00:00+00:00"
