"""A real ``ai-lab serve`` process on a free port, for tests that need processes and sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tests.support.postgres import free_port

ADMIN_PASSWORD = "admin-password-for-tests"  # of every test app and server (tests/conftest.py re-exports it)
# llama.cpp's threads wait for each other at every step by spinning: with pytest's workers side by side on
# few cores, a model on every core ran ~5x slower than on one (an agents test: 4 s alone, 24-45 s in the suite).
LOCAL_THREADS = 1

READY_TIMEOUT_S = 60.0


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(data_dir: Path, database_url: str = "", **settings: str) -> dict[str, str]:
    """The environment of a test server: its data dir, database, the tests' admin password, a fresh
    master key, and ``AILAB_<NAME>`` for each of ``settings`` (``openai_compat_base_url=...``)."""
    env = {
        "AILAB_DATA_DIR": str(data_dir),
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_MASTER_KEY": Fernet.generate_key().decode(),
    }
    if database_url:
        env["AILAB_DATABASE_URL"] = database_url
    env.update({f"AILAB_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def run_server(env: dict[str, str], *args: str, log_path: Path) -> Iterator[LiveServer]:
    """Start ``ai-lab serve`` with ``env`` on a free port; wait until ready; SIGTERM it at the end."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    full_env.update(env)
    full_env["AILAB_PORT"] = str(port)
    full_env.setdefault("AILAB_LOCAL_THREADS", str(LOCAL_THREADS))
    cli = Path(sys.executable).with_name("ai-lab")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [str(cli), "serve", *args], env=full_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(server: LiveServer) -> None:
    """Poll /health/ready until it answers 200; fail with the server's log if it dies or times out."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
            try:
                if client.get(f"{server.base_url}/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling interval of a readiness probe, not a synchronisation
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S}s:\n{server.log()}")


async def stored_messages(base_url: str, headers: dict[str, str]) -> list[str]:
    """The content of every message of the caller's sessions (up to 200 sessions), page by page."""
    stored: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        for session in (await client.get("/sessions", params={"limit": 200})).json()["items"]:
            after: int | None = -1
            while after is not None:
                page = (
                    await client.get(
                        f"/sessions/{session['id']}/messages", params={"after": after, "limit": 1000}
                    )
                ).json()
                stored += [m["content"] for m in page["items"]]
                after = page["next_after"]
    return stored
