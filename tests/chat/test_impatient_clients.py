"""Impatient clients cannot wedge a real server on the embedded model (``ai-lab serve``, real sockets).

Users retry when an answer is slow. Before the bounds, six such requests could keep the one-at-a-time
embedded model busy for minutes (a looping answer ran until the 4,096-token context was full), every
request behind them waited, and the server took long to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import LiveServer, run_server

pytestmark = pytest.mark.slow
QUESTIONS = ["What is the capital of France?", "Write a haiku about rain."]


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "AILAB_DATA_DIR": str(tmp_path / "data"),
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_MASTER_KEY": Fernet.generate_key().decode(),
        **extra,
    }


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with run_server(server_env(tmp_path), log_path=tmp_path / "server.log") as server:
        yield server


async def token_of(client: httpx.AsyncClient) -> dict[str, str]:
    login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_clients_that_give_up_do_not_wedge_the_server(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        auth = await token_of(client)

        async def impatient(question: str) -> None:
            body = {"message": question, "pipeline": "direct"}
            with contextlib.suppress(httpx.TimeoutException):  # this user gives up (and will retry)
                await client.post("/chat", json=body, headers=auth, timeout=3)

        await asyncio.gather(*(impatient(QUESTIONS[i % 2]) for i in range(6)))
        started = time.monotonic()
        late = await client.post(
            "/v1/chat/completions",
            json={
                "model": "local/smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 4,
            },
            headers=auth,
            timeout=120,
        )
        waited = time.monotonic() - started
    # Every generation is bounded (a loop is cut, 1,024 tokens, 60 s) and the queue is bounded: the late
    # request is answered, or refused clearly once the queue would keep it longer than its timeout (30 s).
    if late.status_code == 503:
        assert int(late.headers["Retry-After"]) >= 1
        assert late.json()["error"]["code"] == "model_busy"
    else:
        assert late.status_code == 200, late.text
        assert late.json()["usage"]["completion_tokens"] <= 4
    assert waited < 45
    stop_started = time.monotonic()
    live.process.send_signal(signal.SIGTERM)
    live.process.wait(timeout=40)
    assert time.monotonic() - stop_started < 35  # at most the graceful period, then every generation stops
    assert live.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done


async def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    env = server_env(tmp_path, AILAB_LOCAL_QUEUE_SIZE="0")
    with run_server(env, log_path=tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            auth = await token_of(client)
            # Greedy decoding makes the holder's length fixed: its whole 200 tokens, seconds of work, while
            # the two requests below take milliseconds.
            story = {
                "message": "Write a long story about a dragon.",
                "pipeline": "direct",
                "stream": True,
                "temperature": 0,
                "max_tokens": 200,
            }
            gateway_body = {
                "model": "local/smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "Hi"}],
            }
            async with client.stream("POST", "/chat", json=story, headers=auth) as running:
                lines = running.aiter_lines()
                async for line in lines:
                    if '"type": "delta"' in line or '"type":"delta"' in line:
                        break  # the model is busy with this one now
                # Both at once, while the holder still generates: neither may wait in the (empty) queue.
                busy, gateway = await asyncio.gather(
                    client.post("/chat", json={"message": "Hi", "pipeline": "direct"}, headers=auth),
                    client.post("/v1/chat/completions", json=gateway_body, headers=auth),
                )
                rest = [line async for line in lines]
            assert busy.status_code == 503, busy.text
            assert int(busy.headers["Retry-After"]) >= 1
            assert busy.json()["status"] == "error"
            assert "busy" in busy.json()["error"]
            assert gateway.status_code == 503, gateway.text
            assert gateway.json()["error"]["code"] == "model_busy"
            assert int(gateway.headers["Retry-After"]) >= 1
            assert any('"type": "final"' in line or '"type":"final"' in line for line in rest)
