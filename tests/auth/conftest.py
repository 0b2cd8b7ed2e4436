"""Fixtures of the auth tests: an anonymous client on the same app, and two ordinary users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

PASSWORD_A = "alice-password-1"
PASSWORD_B = "bob-password-22"


@dataclass
class Account:
    name: str
    password: str
    headers: dict[str, str]


async def login(client: httpx.AsyncClient, name: str, password: str) -> dict[str, str]:
    """Log in over HTTP and return the Authorization header."""
    response = await client.post("/auth/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


@pytest.fixture
async def anon(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the already started app that sends no credentials."""
    transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def alice(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> Account:
    """An ordinary user, created by the admin over ``POST /users`` and logged in."""
    created = await client.post("/users", json={"username": "alice", "password": PASSWORD_A, "role": "user"})
    assert created.status_code == 201, created.text
    return Account("alice", PASSWORD_A, await login(anon, "alice", PASSWORD_A))


@pytest.fixture
async def bob(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> Account:
    """A second ordinary user."""
    created = await client.post("/users", json={"username": "bob", "password": PASSWORD_B})
    assert created.status_code == 201, created.text
    return Account("bob", PASSWORD_B, await login(anon, "bob", PASSWORD_B))
