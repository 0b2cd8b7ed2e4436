"""The browser's session: an httpOnly, SameSite=Strict cookie beside bearer credentials; changes made with
it must be JSON (no cross-site forgery); sign-out ends it on the server."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import update

from ailab.db.tables import ApiToken
from tests.conftest import ADMIN_PASSWORD

LOGIN = {"username": "admin", "password": ADMIN_PASSWORD}


async def signed_in(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client without its bearer header, signed in through the session cookie."""
    del client.headers["Authorization"]
    response = await client.post("/auth/session", json=LOGIN)
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "admin" and response.json()["role"] == "admin"
    cookie = response.headers["set-cookie"]
    assert "ailab_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie
    return client


async def test_a_signed_in_browser_reads_and_changes_with_json_only(client: httpx.AsyncClient) -> None:
    await signed_in(client)
    assert (await client.get("/auth/me")).json()["username"] == "admin"
    created = await client.post("/sessions", json={"title": "from the browser"})
    assert created.status_code == 201
    forged = await client.post(
        "/sessions", content=b"title=forged", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert forged.status_code in (403, 415)  # the body guard or the cookie check: never done
    plain = await client.request("DELETE", f"/sessions/{created.json()['id']}")  # no JSON type: refused
    assert plain.status_code == 403
    titles = [s["title"] for s in (await client.get("/sessions")).json()["items"]]
    assert titles == ["from the browser"]  # the forged request changed nothing
    deleted = await client.request(
        "DELETE", f"/sessions/{created.json()['id']}", json={}, headers={"Content-Type": "application/json"}
    )
    assert deleted.status_code == 204
    assert (await client.get("/auth/tokens")).json()["items"] == []  # a session is not an API token


async def test_the_fast_lane_takes_the_cookie_too(client: httpx.AsyncClient) -> None:
    await signed_in(client)
    forged = await client.post("/chat", content=b'{"message": "hi"}', headers={"Content-Type": "text/plain"})
    assert forged.status_code in (403, 415)
    missing = await client.post("/chat", json={"message": "hi", "model": "nope/none", "pipeline": "direct"})
    assert missing.status_code == 404  # authenticated, then refused for the unknown model


async def test_sign_out_ends_the_session_on_the_server(client: httpx.AsyncClient) -> None:
    await signed_in(client)
    assert (await client.get("/auth/session")).json()["user"]["username"] == "admin"
    cookie = client.cookies["ailab_session"]
    out = await client.post("/auth/logout", json={})
    assert out.status_code == 204 and 'ailab_session=""' in out.headers["set-cookie"]
    client.cookies.set("ailab_session", cookie)  # a copy kept by someone: dead all the same
    assert (await client.get("/auth/me")).status_code == 401
    state = await client.get("/auth/session")  # what the page asks first: no 401, nobody
    assert state.status_code == 200 and state.json() == {"user": None}


async def test_a_session_ends_when_it_expires_or_the_password_changes(client: httpx.AsyncClient) -> None:
    services = client.services  # type: ignore[attr-defined]
    bearer = client.headers["Authorization"]
    await signed_in(client)
    async with services.db.write() as session:
        await session.execute(
            update(ApiToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    services.auth.forget_cached()
    assert (await client.get("/auth/me")).status_code == 401

    await client.post("/auth/session", json=LOGIN)
    assert (await client.get("/auth/me")).status_code == 200
    changed = await client.patch(
        "/users/admin", json={"password": "a-new-password-123"}, headers={"Authorization": bearer}
    )
    assert changed.status_code == 200
    assert (await client.get("/auth/me")).status_code == 401


@pytest.mark.parametrize("password", ["wrong-password", ""])
async def test_a_wrong_password_opens_nothing(client: httpx.AsyncClient, password: str) -> None:
    del client.headers["Authorization"]
    response = await client.post("/auth/session", json={"username": "admin", "password": password})
    assert response.status_code in (401, 422)
    assert "set-cookie" not in response.headers
