"""The real server process: start-up, access log, request ids, CORS and graceful shutdown."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import LiveServer, run_server

pytestmark = pytest.mark.slow  # starts server or CLI processes


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "AILAB_DATA_DIR": str(tmp_path / "data"),
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_MASTER_KEY": Fernet.generate_key().decode(),
        **extra,
    }


def _login(client: httpx.Client, base_url: str) -> dict[str, str]:
    token = client.post(f"{base_url}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_json_access_log_and_request_ids(tmp_path: Path) -> None:
    with (
        run_server(_env(tmp_path, AILAB_LOG_FORMAT="json"), log_path=tmp_path / "log") as server,
        httpx.Client() as client,
    ):
        headers = _login(client, server.base_url)
        sid = client.post(f"{server.base_url}/sessions", json={}, headers=headers).json()["id"]
        echoed = client.get(
            f"{server.base_url}/sessions/{sid}", headers={**headers, "X-Request-ID": "trace-42"}
        )
        assert echoed.headers["x-request-id"] == "trace-42"
        fresh = client.get(f"{server.base_url}/health/live")
        assert len(fresh.headers["x-request-id"]) == 32
        # A credential pasted as the id is not taken (the access log would carry it unmasked).
        pasted = client.get(f"{server.base_url}/health/live", headers={"X-Request-ID": "ailab_abcdefgh12345"})
        assert pasted.headers["x-request-id"] != "ailab_abcdefgh12345"
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "ailab.access"]
    mine = next(line for line in access if line.get("request_id") == "trace-42")
    assert mine["method"] == "GET"
    assert mine["route"] == "/sessions/{session_id}"
    assert mine["status"] == 200
    assert mine["duration_ms"] >= 0
    assert sid not in json.dumps(mine)  # the template, never the raw path
    assert (tmp_path / "data" / "ai_lab.db").exists()
    assert "abcdefgh12345" not in server.log()


def test_cors_is_closed_by_default_and_opened_per_origin(tmp_path: Path) -> None:
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"}
    with run_server(_env(tmp_path), log_path=tmp_path / "log1") as server:
        response = httpx.options(f"{server.base_url}/sessions", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    env = _env(tmp_path, AILAB_CORS_ORIGINS="https://ui.example, https://other.example")
    with run_server(env, log_path=tmp_path / "log2") as server:
        allowed = httpx.options(f"{server.base_url}/sessions", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
        denied = httpx.options(
            f"{server.base_url}/sessions", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in denied.headers
        # The fast lane's routes too (answered 401 here: no credentials).
        origin = {"Origin": "https://ui.example"}
        for response in (
            httpx.get(f"{server.base_url}/v1/models", headers=origin),
            httpx.post(f"{server.base_url}/chat", json={"message": "hi"}, headers=origin),
        ):
            assert response.status_code == 401
            assert response.headers["access-control-allow-origin"] == "https://ui.example"


def _wait_for_log(server: LiveServer, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} never appeared in the log"
        time.sleep(0.01)  # polling a log file for a condition, with a deadline


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    with run_server(_env(tmp_path), log_path=tmp_path / "log") as server, httpx.Client() as client:
        headers = _login(client, server.base_url)
        sid = client.post(f"{server.base_url}/sessions", json={}, headers=headers).json()["id"]
        body = json.dumps({"role": "user", "content": "sent across a shutdown"}).encode()
        host, port = server.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            head = (
                f"POST /sessions/{sid}/messages HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Authorization: {headers['Authorization']}\r\nContent-Length: {len(body)}\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
            sock.sendall(head)
            # The server says "100 Continue" once the route asks for the body: the request is in flight
            # (a head still in the socket's buffer at the signal would be a connection shut as idle).
            interim = b""
            while b"\r\n\r\n" not in interim:
                interim += sock.recv(1)
            assert interim.startswith(b"HTTP/1.1 100"), interim
            sock.sendall(body[:10])
            server.process.send_signal(signal.SIGTERM)
            _wait_for_log(server, "Shutting down")  # shutdown has begun with our request half-sent
            sock.sendall(body[10:])
            response = b""
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                response += chunk
        assert response.startswith(b"HTTP/1.1 201"), response[:200]
        # uvicorn re-raises the signal after a clean shutdown, so the exit status is -SIGTERM.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    log = server.log()
    assert log.index("Shutting down") < log.index("POST /sessions/{session_id}/messages 201")
    assert "Application shutdown complete" in log
    # The acknowledged message is in the database after the shutdown.
    with run_server(_env(tmp_path), log_path=tmp_path / "log-again") as again, httpx.Client() as client:
        history = client.get(
            f"{again.base_url}/conversation/{sid}", headers=_login(client, again.base_url)
        ).json()
        assert [h["content"] for h in history["history"]] == ["sent across a shutdown"]
