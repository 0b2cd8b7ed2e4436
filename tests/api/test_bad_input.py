"""Bad input answers a clear JSON 4xx and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ailab.config import Settings
from tests.conftest import AppClientFactory


async def _snapshot(client: httpx.AsyncClient) -> list[Any]:
    sessions = (await client.get("/sessions", params={"limit": 200})).json()["items"]
    result: list[Any] = []
    for s in sessions:
        messages = (await client.get(f"/sessions/{s['id']}/messages")).json()["items"]
        result.append((s["id"], s["title"], [(m["role"], m["content"]) for m in messages]))
    return result


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    sid = (await client.post("/sessions", json={"title": "keep"})).json()["id"]
    await client.post(f"/sessions/{sid}/messages", json={"role": "user", "content": "hello"})
    return client, sid


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    (
        "POST",
        "/sessions",
        {"content": b'{"title": "x"', "headers": {"content-type": "application/json"}},
        400,
    ),
    (
        "POST",
        "/sessions/{sid}/messages",
        {"content": b"not json", "headers": {"content-type": "application/json"}},
        400,
    ),
    ("POST", "/sessions", {"json": {"title": 42}}, 422),
    ("POST", "/sessions", {"json": {"title": "x" * 300}}, 422),
    ("PATCH", "/sessions/{sid}", {"json": {"title": ["a"]}}, 422),
    ("PATCH", "/sessions/{sid}", {"json": {}}, 422),
    ("POST", "/sessions/{sid}/messages", {"json": {"role": "user"}}, 422),
    ("POST", "/sessions/{sid}/messages", {"json": {"role": "user", "content": 5}}, 422),
    ("POST", "/sessions/{sid}/messages", {"json": {"role": "<script>", "content": "x"}}, 422),
    ("GET", "/sessions", {"params": {"limit": 0}}, 422),
    ("GET", "/sessions", {"params": {"limit": "many"}}, 422),
    ("GET", "/sessions", {"params": {"cursor": "garbage!"}}, 404),  # no such page
    ("GET", "/sessions/{sid}/export", {"params": {"format": "pdf"}}, 422),
    ("GET", "/sessions/no-such-session", {}, 404),
    ("PATCH", "/sessions/no-such-session", {"json": {"title": "x"}}, 404),
    ("DELETE", "/sessions/no-such-session", {}, 404),
    ("POST", "/sessions/no-such-session/messages", {"json": {"role": "user", "content": "x"}}, 404),
    ("GET", "/conversation/no-such-session", {}, 404),
    ("DELETE", "/conversation/no-such-session", {}, 404),
    ("GET", "/sessions/bad%20id", {}, 422),
    ("POST", "/sessions/import", {"json": {"format": "other"}}, 422),
    (
        "POST",
        "/sessions/import",
        {"json": {"format": "ailab.session.v1", "session": {}, "messages": [{"role": 1}]}},
        422,
    ),
    ("POST", "/sessions/import", {"json": [1, 2]}, 422),
    # Wrong types and out-of-range numbers anywhere in an import: 422, never the database's 500.
    *(
        ("POST", "/sessions/import", {"json": {"format": "ailab.session.v1", **document}}, 422)
        for document in (
            {"messages": [{"role": "user", "content": "x", "prompt_tokens": "many"}]},
            {"messages": [{"role": "user", "content": "x", "prompt_tokens": 2**70}]},
            {"messages": [{"role": "user", "content": "x", "created_at": "yesterday"}]},
            {"messages": [{"role": "user", "content": ["x"]}]},
            {"messages": [], "agent_states": [{"agent": "CEO", "step": "first"}]},
            {"messages": [], "agent_states": [{"agent": "CEO", "duration_ms": "slow"}]},
            {"messages": [], "session": {"title": {"nested": True}}},
            {"messages": "none"},
        )
    ),
    ("GET", "/sessions/{sid}/messages", {"params": {"after": 2**64}}, 422),
    ("GET", "/sessions/{sid}/messages", {"params": {"after": 2**63}}, 422),
    (
        "POST",
        "/sessions",
        {"content": b"x" * (1024 * 1024 + 1), "headers": {"content-type": "application/json"}},
        413,
    ),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD_REQUESTS)
async def test_bad_input_is_refused_and_changes_nothing(
    seeded: tuple[httpx.AsyncClient, str], method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    client, sid = seeded
    before = await _snapshot(client)
    response = await client.request(method, path.format(sid=sid), **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "detail" in response.json()
    assert response.headers["x-request-id"]
    assert await _snapshot(client) == before


async def test_chunked_body_over_the_limit_is_413(seeded: tuple[httpx.AsyncClient, str]) -> None:
    client, sid = seeded
    before = await _snapshot(client)

    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    response = await client.post(
        f"/sessions/{sid}/messages", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert await _snapshot(client) == before


async def test_body_limit_is_a_setting(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=database_url, max_body_bytes=2048)) as client:
        ok = await client.post("/sessions", json={"title": "t" * 200})
        assert ok.status_code == 201
        sid = ok.json()["id"]
        too_big = await client.post(f"/sessions/{sid}/messages", json={"role": "user", "content": "x" * 3000})
        assert too_big.status_code == 413
        assert (await client.get(f"/sessions/{sid}")).json()["message_count"] == 0


async def test_unexpected_error_is_500_with_request_id_and_logged(
    settings: Settings, app_client: AppClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with app_client(settings) as client:
        app = client.app  # type: ignore[attr-defined]

        async def boom(secret_body: dict[str, Any]) -> None:
            raise RuntimeError("kaboom")

        app.add_api_route("/boom", boom, methods=["POST"])
        response = await client.post(
            "/boom", json={"password": "hunter2-canary"}, headers={"X-Request-ID": "req-123"}
        )
    assert response.status_code == 500
    body = response.json()
    assert body["request_id"] == "req-123"
    assert response.headers["x-request-id"] == "req-123"
    assert "kaboom" not in response.text
    error_records = [r for r in caplog.records if r.name == "ailab.errors"]
    assert error_records and error_records[0].exc_info is not None
    assert "req-123" in error_records[0].getMessage()
    assert all("hunter2-canary" not in r.getMessage() for r in caplog.records)
