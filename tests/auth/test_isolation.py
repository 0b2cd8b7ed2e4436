"""Isolation between users: B gets 404 on each of A's objects by every route, and never sees A's content.

The routes are a table (``PROBES``): a route that reaches a user's object by id belongs in it, with the
kind of object it reaches (``OWNERS`` builds one for A). ``test_every_owned_route_is_probed`` fails when
a route under one of ``OWNED_PREFIXES`` is missing from the table, so new routes cannot slip past.
Listings that show a user's objects go in ``LISTINGS``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ailab.app import create_app
from ailab.config import Settings
from ailab.db.tables import BenchmarkRun, Run
from ailab.services.container import Services
from tests.auth.conftest import Account

MARK = "alpha-secret"  # every piece of A's content carries it; B's answers must never


@dataclass(frozen=True)
class Owned:
    """One of A's objects: its id and how A sees it when it is intact."""

    id: str
    snapshot_url: str


async def own_session(client: httpx.AsyncClient, a: Account) -> Owned:
    """A session of A with a message and an agent state (through the import route: all public paths)."""
    document = {
        "format": "ailab.session.v1",
        "session": {"title": f"{MARK} title"},
        "messages": [{"role": "user", "content": f"{MARK} message"}],
        "agent_states": [{"step": 0, "agent": "planner", "output": f"{MARK} state", "status": "done"}],
    }
    response = await client.post("/sessions/import", json=document, headers=a.headers)
    assert response.status_code == 201, response.text
    sid = response.json()["id"]
    return Owned(sid, f"/sessions/{sid}/export")


async def own_benchmark_run(client: httpx.AsyncClient, a: Account) -> Owned:
    """A finished benchmark run of A, stored as the benchmark service stores one."""
    services: Services = client.services  # type: ignore[attr-defined]
    me = (await client.get("/auth/me", headers=a.headers)).json()
    run_id = str(uuid.uuid4())
    async with services.db.write() as session:
        session.add(
            BenchmarkRun(
                id=run_id,
                owner_id=me["id"],
                status="done",
                params={"model_name": "local/x", "prompt": f"{MARK} prompt", "iterations": 1},
                results={"models": []},
            )
        )
    return Owned(run_id, f"/benchmark/runs/{run_id}")


async def own_chat_run(client: httpx.AsyncClient, a: Account) -> Owned:
    """A finished run of A in one of A's sessions, stored as a /chat turn stores one."""
    services: Services = client.services  # type: ignore[attr-defined]
    session = await own_session(client, a)
    me = (await client.get("/auth/me", headers=a.headers)).json()
    run_id = str(uuid.uuid4())
    async with services.db.write() as db:
        db.add(
            Run(
                id=run_id,
                session_id=session.id,
                owner_id=me["id"],
                status="done",
                pipeline="direct",
                model=f"local/{MARK}",
                instance_id="elsewhere/1/1",
                last_event_id=2,
            )
        )
    return Owned(run_id, f"/runs/{run_id}")


OWNERS: dict[str, Callable[[httpx.AsyncClient, Account], Awaitable[Owned]]] = {
    "session": own_session,
    "benchmark_run": own_benchmark_run,
    "chat_run": own_chat_run,
}


@dataclass(frozen=True)
class Probe:
    """B's attempt on A's object: ``{id}`` in the route's parameter or in body strings is A's id."""

    method: str
    route: str  # the OpenAPI template
    kind: str  # a key of OWNERS
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)

    def url(self, object_id: str) -> str:
        return re.sub(r"{\w+}", object_id, self.route)

    def json(self, object_id: str) -> dict[str, Any] | None:
        if self.body is None:
            return None
        return {k: v.replace("{id}", object_id) if isinstance(v, str) else v for k, v in self.body.items()}


PROBES = [
    Probe("GET", "/sessions/{session_id}", "session"),
    Probe("PATCH", "/sessions/{session_id}", "session", {"title": "taken over"}),
    Probe("DELETE", "/sessions/{session_id}", "session"),
    Probe("GET", "/sessions/{session_id}/messages", "session"),
    Probe("POST", "/sessions/{session_id}/messages", "session", {"role": "user", "content": "intruder"}),
    Probe("GET", "/sessions/{session_id}/agent-states", "session"),
    Probe("GET", "/sessions/{session_id}/runs", "session"),
    Probe("GET", "/sessions/{session_id}/export", "session", params={"format": "json"}),
    Probe("GET", "/sessions/{session_id}/export", "session", params={"format": "markdown"}),
    Probe("GET", "/conversation/{session_id}", "session"),
    Probe("DELETE", "/conversation/{session_id}", "session"),
    Probe("POST", "/chat", "session", {"message": "intruder", "session_id": "{id}", "pipeline": "direct"}),
    Probe("GET", "/benchmark/runs/{run_id}", "benchmark_run"),
    Probe("GET", "/runs/{run_id}", "chat_run"),
    Probe("GET", "/runs/{run_id}/events", "chat_run"),
    Probe("POST", "/runs/{run_id}/cancel", "chat_run"),
]
# Routes under these prefixes that take an id must all be probed above.
OWNED_PREFIXES = ("/sessions/{", "/conversation/{", "/benchmark/runs/{", "/runs/{")
# Listings of a user's own objects, with the route that shows A's object there (the control).
LISTINGS = {"/sessions": "session", "/benchmark/runs": "benchmark_run", "/auth/tokens": "token"}


def test_every_owned_route_is_probed(settings: Settings) -> None:
    openapi = create_app(settings, migrate=False).openapi()
    probed = {(p.method, p.route) for p in PROBES}
    missing = []
    for template, item in openapi["paths"].items():
        if template.startswith(OWNED_PREFIXES):
            missing += [(m.upper(), template) for m in item if (m.upper(), template) not in probed]
    assert not missing, f"add these routes to PROBES in {__file__}: {missing}"
    for probe in PROBES:
        assert probe.route in openapi["paths"], f"{probe.route} is in PROBES but not in the app"
        assert probe.method.lower() in openapi["paths"][probe.route], probe


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: f"{p.method} {p.route} {p.params or ''}".strip())
async def test_b_gets_404_on_a_objects(
    probe: Probe, client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    owned = await OWNERS[probe.kind](client, alice)
    before = await client.get(owned.snapshot_url, headers=alice.headers)
    assert before.status_code == 200, before.text

    response = await client.request(
        probe.method,
        probe.url(owned.id),
        params=probe.params,
        json=probe.json(owned.id),
        headers=bob.headers,
    )
    assert response.status_code == 404, f"{probe}: {response.status_code} {response.text}"
    assert MARK not in response.text
    if probe.route == "/chat":
        assert "session" in response.json()["detail"]  # refused for the session, not for another reason

    after = await client.get(owned.snapshot_url, headers=alice.headers)
    assert after.status_code == 200
    strip = {"exported_at"}
    assert _without(after.json(), strip) == _without(before.json(), strip), "B's request changed A's object"


def _without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


async def test_a_content_never_appears_in_b_listings(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    owned = {kind: await factory(client, alice) for kind, factory in OWNERS.items()}
    token = await client.post("/auth/tokens", json={"name": f"{MARK} token"}, headers=alice.headers)
    assert token.status_code == 201
    owned["token"] = Owned(token.json()["id"], "/auth/tokens")
    await client.post("/sessions", json={"title": "bob's own"}, headers=bob.headers)

    for url, kind in LISTINGS.items():
        mine = await client.get(url, headers=alice.headers)
        assert mine.status_code == 200, f"{url}: {mine.text}"
        assert owned[kind].id in mine.text, f"control: A's {kind} should be listed for A at {url}"
        theirs = await client.get(url, headers=bob.headers)
        assert theirs.status_code == 200, f"{url}: {theirs.text}"
        assert owned[kind].id not in theirs.text, f"A's {kind} listed for B at {url}"
        assert MARK not in theirs.text, f"A's content listed for B at {url}"
    bob_sessions = (await client.get("/sessions", headers=bob.headers)).json()["items"]
    assert [s["title"] for s in bob_sessions] == ["bob's own"]


async def test_b_cannot_revoke_a_token(client: httpx.AsyncClient, alice: Account, bob: Account) -> None:
    created = (await client.post("/auth/tokens", json={"name": "a"}, headers=alice.headers)).json()
    refused = await client.delete(f"/auth/tokens/{created['id']}", headers=bob.headers)
    assert refused.status_code == 404
    api = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/auth/me", headers=api)).json()["username"] == "alice"
