"""The sessions API end to end on the ASGI app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from ailab.config import Settings
from tests.conftest import AppClientFactory


async def test_session_flow(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=any_database_url)) as client:
        created = await client.post("/sessions", json={"title": "First"})
        assert created.status_code == 201
        session = created.json()
        sid = session["id"]
        assert session["title"] == "First"
        assert session["message_count"] == 0

        for i, role in enumerate(["user", "assistant", "user"]):
            r = await client.post(f"/sessions/{sid}/messages", json={"role": role, "content": f"m{i}"})
            assert r.status_code == 201, r.text
            assert r.json()["seq"] == i

        messages = (await client.get(f"/sessions/{sid}/messages")).json()
        assert [m["content"] for m in messages["items"]] == ["m0", "m1", "m2"]
        assert messages["next_after"] is None
        page = (await client.get(f"/sessions/{sid}/messages", params={"limit": 2})).json()
        assert [m["seq"] for m in page["items"]] == [0, 1]
        assert page["next_after"] == 1
        rest = (await client.get(f"/sessions/{sid}/messages", params={"after": 1})).json()
        assert [m["seq"] for m in rest["items"]] == [2]

        renamed = await client.patch(f"/sessions/{sid}", json={"title": "Renamed"})
        assert renamed.json()["title"] == "Renamed"
        got = (await client.get(f"/sessions/{sid}")).json()
        assert got["title"] == "Renamed"
        assert got["message_count"] == 3

        history = (await client.get(f"/conversation/{sid}")).json()["history"]
        assert [(h["role"], h["content"]) for h in history] == [
            ("user", "m0"),
            ("assistant", "m1"),
            ("user", "m2"),
        ]
        assert all(h["timestamp"] for h in history)

        exported = (await client.get(f"/sessions/{sid}/export", params={"format": "json"})).json()
        assert exported["format"] == "ailab.session.v1"
        assert len(exported["messages"]) == 3
        markdown = await client.get(f"/sessions/{sid}/export", params={"format": "markdown"})
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert "# Renamed" in markdown.text
        assert "m1" in markdown.text

        imported = await client.post("/sessions/import", json=exported)
        assert imported.status_code == 201
        new_id = imported.json()["id"]
        assert new_id != sid
        copy = (await client.get(f"/sessions/{new_id}/export")).json()
        assert [(m["role"], m["content"], m["created_at"]) for m in copy["messages"]] == [
            (m["role"], m["content"], m["created_at"]) for m in exported["messages"]
        ]

        deleted = await client.delete(f"/sessions/{sid}")
        assert deleted.status_code == 204
        assert (await client.get(f"/sessions/{sid}")).status_code == 404
        assert (await client.get(f"/sessions/{sid}/messages")).status_code == 404
        assert (await client.get(f"/conversation/{sid}")).status_code == 404
        assert (await client.get(f"/sessions/{new_id}")).status_code == 200


async def test_cursor_pagination_visits_every_session_once(client: httpx.AsyncClient) -> None:
    ids = {(await client.post("/sessions", json={"title": f"s{i}"})).json()["id"] for i in range(7)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/sessions", params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    assert set(seen) == ids


async def test_concurrent_appends_keep_a_total_order(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=any_database_url)) as client:
        sid = (await client.post("/sessions", json={})).json()["id"]
        responses = await asyncio.gather(
            *(
                client.post(f"/sessions/{sid}/messages", json={"role": "user", "content": f"c{i}"})
                for i in range(20)
            )
        )
        assert all(r.status_code == 201 for r in responses)
        seqs = sorted(r.json()["seq"] for r in responses)
        assert seqs == list(range(20))
        items = (await client.get(f"/sessions/{sid}/messages")).json()["items"]
        assert sorted(m["content"] for m in items) == sorted(f"c{i}" for i in range(20))
        assert [m["seq"] for m in items] == list(range(20))
        by_content = {r.json()["content"]: r.json()["seq"] for r in responses}
        assert all(by_content[m["content"]] == m["seq"] for m in items)


async def test_legacy_style_ids_are_accepted(client: httpx.AsyncClient) -> None:
    services = client.services  # type: ignore[attr-defined]
    admin = await services.auth.local_admin()
    for legacy_id in ("1749285836734", "test123", "test_1749283294"):
        await services.sessions.create(admin.id, "legacy", legacy_id)
        await services.sessions.append(admin.id, legacy_id, "User", "hi")
        assert (await client.get(f"/sessions/{legacy_id}")).status_code == 200
        history = (await client.get(f"/conversation/{legacy_id}")).json()["history"]
        assert history[0]["role"] == "User"


async def test_new_ids_do_not_collide(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(client.post("/sessions", json={}) for _ in range(30)))
    assert len({r.json()["id"] for r in responses}) == 30


async def test_search_finds_titles_containing_the_query_in_any_case(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=any_database_url)) as client:
        await check_search(client)


async def check_search(client: httpx.AsyncClient) -> None:
    titles = ["Rust borrow checker", "Paris trip", "rusty bike", "100% done", "a_b", "ab"]
    for title in titles:
        assert (await client.post("/sessions", json={"title": title})).status_code == 201

    async def search(q: str, limit: int = 50) -> list[str]:
        found: list[str] = []
        cursor = None
        while True:
            params = {"q": q, "limit": limit, **({"cursor": cursor} if cursor else {})}
            response = await client.get("/sessions", params=params)
            assert response.status_code == 200
            page = response.json()
            found += [s["title"] for s in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                return found

    assert await search("RUST") == ["rusty bike", "Rust borrow checker"]  # newest first
    assert await search("rust", limit=1) == ["rusty bike", "Rust borrow checker"]  # paged, same query
    assert await search("%") == ["100% done"]  # wildcards are plain characters
    assert await search("_") == ["a_b"]
    assert await search("  ") == list(reversed(titles))  # blank: everything
    assert await search("nowhere") == []
    assert (await client.get("/sessions", params={"q": "x" * 257})).status_code == 422
