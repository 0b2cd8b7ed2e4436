"""Fixtures of the usage and budget tests: the app (SQLite and PostgreSQL) on the recording upstream,
users with their own credentials, and the official ``openai`` SDK on an API token.

Each test that builds the app runs through the fast lane and through FastAPI's routes (``both_lanes``):
the caller is attributed on both paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from ailab.config import Settings
from ailab.services.auth.accounts import Principal
from tests.conftest import AppClientFactory, bearer, both_lanes
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure

MODEL = "openai-compat/echo"
EMBEDDING_MODEL = "openai-compat/text-embedding-3-small"
PASSWORD = "a-long-password"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both_lanes(metafunc)


@pytest.fixture
def usage_settings(
    make_settings: Callable[..., Settings], any_database_url: str, upstream: FakeOpenAI
) -> Callable[..., Settings]:
    """Settings on a fresh database (SQLite, then PostgreSQL) with ``openai-compat`` on the upstream.

    The background flush is an hour away: what a test sees was written by the flush a read makes (or
    the test's own ``sync()``), never by a timer racing it.
    """

    def build(**overrides: Any) -> Settings:
        settings = make_settings(database_url=any_database_url, usage_flush_seconds=3600, **overrides)
        return configure(settings, openai_compat_base_url=upstream.base_url)

    return build


@pytest.fixture
async def client(
    usage_settings: Callable[..., Settings], app_client: AppClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app as admin (``client.services`` at hand)."""
    async with app_client(usage_settings()) as c:
        yield c


@dataclass
class Member:
    """A user of the app, with an access token's headers."""

    name: str
    id: str
    headers: dict[str, str]


async def add_user(client: httpx.AsyncClient, name: str) -> Member:
    """Create a user (as the admin ``client``) and sign them in."""
    created = await client.post("/users", json={"username": name, "password": PASSWORD})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    services = client.services  # type: ignore[attr-defined]
    return Member(name, user_id, bearer(services, Principal(user_id, name, "user")))


async def admin_of(client: httpx.AsyncClient) -> Member:
    """The admin behind ``client``."""
    me = (await client.get("/auth/me")).json()
    return Member(me["username"], me["id"], {"Authorization": client.headers["Authorization"]})


async def new_token(client: httpx.AsyncClient, member: Member, name: str = "sdk") -> tuple[str, str]:
    """A new API token of ``member``: ``(id, secret)``."""
    created = await client.post("/auth/tokens", json={"name": name}, headers=member.headers)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["token"]


def sdk(client: httpx.AsyncClient, api_key: str) -> openai.AsyncOpenAI:
    """The official SDK on the app behind ``client``, unmodified, with ``api_key``; no retries."""
    http = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    return openai.AsyncOpenAI(
        base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0
    )


def chat_body(message: str = "one two three", **extra: Any) -> dict[str, Any]:
    """A ``/chat`` turn on the upstream's echo model, straight to it (no agents)."""
    return {"message": message, "model": MODEL, "pipeline": "direct", **extra}


def by(items: list[dict[str, Any]], key: str) -> dict[Any, tuple[int, int, int]]:
    """A usage report's items as ``{item[key]: (requests, prompt_tokens, completion_tokens)}``."""
    found = {
        item[key]: (item["requests"], item["prompt_tokens"], item["completion_tokens"]) for item in items
    }
    assert len(found) == len(items), items  # one item per group
    return found
