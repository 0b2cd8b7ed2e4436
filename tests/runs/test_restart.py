"""``kill -9`` of the server while a run streams: at the next start that run is failed, never left
"running", its turn keeps two messages, and its events still end (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import orjson
import pytest

from tests.chat.conftest import sse_events
from tests.conftest import ADMIN_PASSWORD
from tests.fakes.openai_server import FakeOpenAI
from tests.support.server import run_server, server_env

pytestmark = pytest.mark.slow  # starts server processes


async def test_a_restart_marks_the_run_it_interrupted_failed(
    any_database_url: str, tmp_path: Path, upstream: FakeOpenAI
) -> None:
    env = server_env(
        tmp_path / "data",
        any_database_url,
        openai_compat_base_url=upstream.base_url,
        openai_compat_api_key="sk-test",
    )
    upstream.stall_after = 1  # the run holds after its first piece, until the server dies
    body = {"message": "hold on", "model": "openai-compat/echo", "pipeline": "direct", "stream": True}
    with run_server(env, log_path=tmp_path / "first.log") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            async with client.stream("POST", "/chat", json=body, headers=headers) as response:
                run_id = response.headers["X-Run-Id"]
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and orjson.loads(line[6:])["type"] == "delta":
                        break
            assert (await client.get(f"/runs/{run_id}", headers=headers)).json()["status"] == "running"
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)

    with run_server(env, log_path=tmp_path / "second.log") as server:  # the same database, restarted
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as client:
            run = (await client.get(f"/runs/{run_id}")).json()
            assert run["status"] == "failed" and "interrupted" in run["error"], run
            messages = (await client.get(f"/sessions/{run['session_id']}/messages")).json()["items"]
            assert [(m["role"], m["status"]) for m in messages] == [
                ("user", "complete"),
                ("assistant", "error"),
            ]
            events = sse_events((await client.get(f"/runs/{run_id}/events")).text, consecutive=False)
            assert [e["type"] if isinstance(e, dict) else e for _, e in events] == ["run", "error", "[DONE]"]
            running = await client.get(f"/sessions/{run['session_id']}/runs", params={"status": "running"})
            assert running.json()["items"] == []


async def test_a_json_chat_whose_client_hangs_up_runs_to_its_end_on_a_real_server(
    tmp_path: Path, upstream: FakeOpenAI, database_url: str
) -> None:
    env = server_env(
        tmp_path / "data",
        database_url,
        openai_compat_base_url=upstream.base_url,
        openai_compat_api_key="sk-test",
    )
    with run_server(env, log_path=tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            session_id = (await client.post("/sessions", json={"title": "impatient"})).json()["id"]
            body = {"message": "wait for it", "model": "openai-compat/echo", "pipeline": "direct"}
            assert (await client.post("/chat", json=body)).status_code == 200  # the model's window is known
            upstream.received.clear()
            upstream.stall_after = 1
            async with httpx.AsyncClient(base_url=server.base_url, headers=client.headers) as impatient:
                hung_up = asyncio.create_task(
                    impatient.post("/chat", json={**body, "session_id": session_id})
                )
                await asyncio.wait_for(upstream.received.wait(), 10)  # the model is asked: the run is on
                hung_up.cancel()  # the client goes away while the upstream holds the answer
            running = (await client.get(f"/sessions/{session_id}/runs", params={"status": "running"})).json()
            [run] = running["items"]
            upstream.release.set()
            events = sse_events((await client.get(f"/runs/{run['id']}/events")).text)
            assert events[-2][1]["type"] == "final" and events[-2][1]["response"] == "echo: wait for it"
            assert (await client.get(f"/runs/{run['id']}")).json()["status"] == "done"
            messages = (await client.get(f"/sessions/{session_id}/messages")).json()["items"]
            assert [(m["role"], m["status"], m["content"]) for m in messages] == [
                ("user", "complete", "wait for it"),
                ("assistant", "complete", "echo: wait for it"),
            ]
