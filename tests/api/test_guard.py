"""What no route should see: non-JSON bodies everywhere; with AILAB_AUTH=off, other machines, other host
names (DNS rebinding) and other sites' pages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from ailab.config import Settings
from tests.conftest import ADMIN_PASSWORD, AppClientFactory
from tests.support.postgres import free_port
from tests.support.server import LiveServer, wait_ready

CHAT = {"message": "hi", "pipeline": "direct", "model": "openai-compat/echo"}


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/chat", b'{"message": "hi"}', "text/plain"),
        ("/chat", b'{"message": "hi"}', None),  # a body with no type (a Blob): what fetch sends unasked
        ("/v1/chat/completions", b'{"model": "openai-compat/echo", "messages": []}', "text/plain"),
        ("/sessions", b"title=x", "application/x-www-form-urlencoded"),
        ("/sessions/import", b"{}", "multipart/form-data; boundary=x"),
    ],
)
async def test_a_body_that_is_not_json_is_415_everywhere(
    upstream_client: httpx.AsyncClient, path: str, body: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    request = upstream_client.build_request("POST", path, content=body, headers=headers)
    if content_type is None:
        request.headers.pop("content-type", None)
    response = await upstream_client.send(request)
    assert response.status_code == 415, response.text
    if path.startswith("/v1/"):
        assert response.json()["error"]["code"] == "unsupported_media_type"
    else:
        assert "JSON" in response.json()["detail"]
    assert (await upstream_client.get("/sessions")).json()["items"] == []  # nothing happened
    ok = await upstream_client.post(
        "/chat", json=CHAT, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


async def test_auth_off_serves_this_machine_its_names_and_its_own_pages_only(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=database_url, auth="off", cors_origins=["http://127.0.0.1:3000"])
    async with app_client(settings, login=False, base_url="http://127.0.0.1:8001") as client:
        app = client.app  # type: ignore[attr-defined]
        assert (await client.get("/auth/me")).json()["username"] == "admin"
        for host in ("localhost:8001", "[::1]:8001", "localhost"):
            assert (await client.get("/auth/me", headers={"host": host})).status_code == 200
        rebound = await client.get("/auth/me", headers={"host": "attacker.example:8001"})
        assert rebound.status_code == 403  # a DNS-rebinding page reaches 127.0.0.1 under its own name
        assert "loopback names only" in rebound.json()["detail"]

        elsewhere = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
        async with httpx.AsyncClient(transport=elsewhere, base_url="http://127.0.0.1:8001") as remote:
            refused = await remote.get("/auth/me")
        assert refused.status_code == 403 and "this machine only" in refused.json()["detail"]

        # A page of another site may not change anything, bodiless requests included.
        spend = "/benchmark/llm?iterations=1&max_tokens=1"
        foreign = await client.post(spend, headers={"origin": "https://attacker.example"})
        assert foreign.status_code == 403
        delete = await client.delete("/sessions/x", headers={"origin": "https://attacker.example"})
        assert delete.status_code == 403
        assert (await client.get("/benchmark/runs")).json()["items"] == []
        own = await client.post(
            "/sessions", json={"title": "mine"}, headers={"origin": "http://127.0.0.1:8001"}
        )
        assert own.status_code == 201
        allowed = await client.post(
            "/sessions", json={"title": "ui"}, headers={"origin": "http://127.0.0.1:3000"}
        )
        assert allowed.status_code == 201  # an origin the admin allowed (AILAB_CORS_ORIGINS)
        curl = await client.post("/sessions", json={"title": "script"})  # no Origin: not a browser page
        assert curl.status_code == 201


def this_machines_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent: this picks the outgoing interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.slow  # a real process
def test_auth_off_reads_the_client_from_the_socket_not_the_setting(tmp_path: Path) -> None:
    address = this_machines_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    env.update(
        AILAB_DATA_DIR=str(tmp_path / "data"),
        AILAB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        AILAB_MASTER_KEY=Fernet.generate_key().decode(),
        AILAB_AUTH="off",  # AILAB_HOST stays 127.0.0.1: the setting's guard is satisfied...
    )
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "ailab.app:app_factory"]
    with open(tmp_path / "log", "wb") as log:  # ... but this listens on every interface
        process = subprocess.Popen(
            [*uvicorn, "--host", "0.0.0.0", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, tmp_path / "log")
    try:
        wait_ready(server)
        assert httpx.get(f"http://127.0.0.1:{port}/auth/me").status_code == 200
        from_outside = httpx.get(f"http://{address}:{port}/auth/me", headers={"host": "localhost"})
        assert from_outside.status_code == 403
        assert "this machine only" in from_outside.json()["detail"]
    finally:
        process.terminate()
        process.wait(timeout=30)
