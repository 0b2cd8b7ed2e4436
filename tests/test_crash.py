"""``kill -9`` of the server while it writes, on SQLite and on PostgreSQL: after a restart, every message
it acknowledged is there exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import run_server, server_env, stored_messages

pytestmark = pytest.mark.slow  # starts server processes

WRITERS = 8


async def write_until_killed(base_url: str, headers: dict[str, str], kill: Callable[[], None]) -> list[str]:
    """Messages acknowledged (201) by writers posting until the server dies under them."""
    acknowledged: list[str] = []
    enough = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        sessions = [
            (await client.post("/sessions", json={"title": f"w{i}"})).json()["id"] for i in range(WRITERS)
        ]

        async def writer(index: int) -> None:
            for attempt in range(100_000):
                content = f"writer {index} message {attempt}"
                try:
                    response = await client.post(
                        f"/sessions/{sessions[index]}/messages", json={"role": "user", "content": content}
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 201:
                    acknowledged.append(content)
                    if len(acknowledged) >= 40 * WRITERS:
                        enough.set()

        async def killer() -> None:
            await enough.wait()
            kill()

        await asyncio.gather(killer(), *(writer(i) for i in range(WRITERS)))
    return acknowledged


async def test_kill_9_mid_write_loses_and_doubles_nothing_acknowledged(
    any_database_url: str, tmp_path: Path
) -> None:
    env = server_env(tmp_path / "data", any_database_url)
    with run_server(env, log_path=tmp_path / "first.log") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        acknowledged = await write_until_killed(
            server.base_url, headers, lambda: server.process.send_signal(signal.SIGKILL)
        )
        server.process.wait(timeout=30)
        assert server.process.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 40 * WRITERS

    with run_server(env, log_path=tmp_path / "second.log") as server:  # the same database, restarted
        stored = await stored_messages(server.base_url, headers)
    assert [content for content, n in Counter(stored).items() if n > 1] == []
    missing = set(acknowledged) - set(stored)
    assert missing == set(), f"{len(missing)} acknowledged messages lost"
