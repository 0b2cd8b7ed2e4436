"""Two replicas on one database and one Redis (``AILAB_REDIS_URL``): a run that replica A executes is
followed, limited and cancelled through replica B."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ailab.config import Settings
from tests.chat.conftest import asgi_stream, stream_then_hang_up
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure
from tests.support.redis import unique_prefix

BODY = {"message": "one two three", "model": "openai-compat/echo", "pipeline": "direct", "stream": True}


@pytest.fixture
def replica_settings(
    make_settings: Callable[..., Settings], any_database_url: str, upstream: FakeOpenAI, redis_url: str
) -> Callable[..., Settings]:
    prefix = unique_prefix()

    def build(**overrides: Any) -> Settings:
        settings = make_settings(
            database_url=any_database_url, redis_url=redis_url, redis_prefix=prefix, **overrides
        )
        return configure(settings, openai_compat_base_url=upstream.base_url)

    return build


async def test_a_run_of_replica_a_is_followed_limited_and_cancelled_through_replica_b(
    replica_settings: Callable[..., Settings], app_client: AppClientFactory, upstream: FakeOpenAI
) -> None:
    settings = replica_settings(max_runs_per_user=1)
    async with app_client(settings) as a, app_client(settings) as b:
        upstream.stall_after = 2
        started = await stream_then_hang_up(a, BODY, after_deltas=1)
        assert started.status == 200

        # The limit is shared: the user's one run is on A, so B refuses a second one.
        refused = await b.post("/chat", json={**BODY, "stream": False})
        assert refused.status_code == 429 and refused.headers["Retry-After"]

        # B follows from the last event A's client saw, through Redis, to the end.
        last = str(started.last_id)
        follower = asyncio.create_task(
            asgi_stream(b, "GET", f"/runs/{started.run_id}/events", headers={"Last-Event-ID": last})
        )
        upstream.release.set()
        resumed = await follower
        assert resumed.status == 200
        assert resumed.ids[0] == started.last_id + 1  # no gap, no repeat
        assert resumed.events[-2]["type"] == "final" and resumed.events[-1] == "[DONE]"
        assert "".join(started.deltas) + "".join(resumed.deltas) == "echo: one two three"
        assert resumed.events[-2]["response"] == "echo: one two three"

        # A run of A, cancelled through B: A's upstream stream is closed and the partial answer stored.
        upstream.release.clear()
        upstream.disconnected.clear()
        held = await stream_then_hang_up(a, BODY, after_deltas=2)
        cancelled = await b.post(f"/runs/{held.run_id}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled", cancelled.text
        await asyncio.wait_for(upstream.disconnected.wait(), timeout=10)
        session_id = held.events[0]["session_id"]
        messages = (await b.get(f"/sessions/{session_id}/messages")).json()["items"]
        assert [(m["role"], m["status"], m["content"]) for m in messages] == [
            ("user", "complete", "one two three"),
            ("assistant", "cancelled", "".join(held.deltas)),
        ]
        replay = await asgi_stream(b, "GET", f"/runs/{held.run_id}/events")  # from Redis, on B
        assert replay.ids[:-1] == list(range(1, len(replay.ids)))
        assert replay.events[-2] == {
            "type": "cancelled",
            "response": "".join(held.deltas),
            "session_id": session_id,
        }

        # The slot is free again, for either replica.
        upstream.stall_after = None
        assert (await b.post("/chat", json={**BODY, "stream": False})).json()["status"] == "success"
