"""A canary key stored through the API must never come back: not in any file under the data dir, not in
the server's log (at debug level), not in any response of a walk over every route."""

from __future__ import annotations

import re
import secrets
import string
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.support.postgres import free_port
from tests.support.server import run_server

pytestmark = pytest.mark.slow  # starts server or CLI processes

ALNUM = string.ascii_letters + string.digits


def rand(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def scan_files(root: Path, canaries: list[str]) -> list[str]:
    """Every (file, canary) pair where the canary's bytes occur in a file under ``root``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {c[:6]}..." for c in canaries if c.encode() in data]
    return found


async def test_canary_keys_never_leak(tmp_path: Path) -> None:
    # Keys in the shapes the log filter masks (sk-...) and in shapes it does not (Cohere's 40 alnum):
    # the second kind proves the code never logs them, rather than the filter hiding them.
    canaries = {
        "openai": "sk-proj-" + rand(60),
        "anthropic": "sk-ant-api03-" + rand(60),
        "cohere": rand(40),
        "huggingface": "hf_" + rand(34),
    }
    values = list(canaries.values())
    closed = f"http://127.0.0.1:{free_port()}"
    data_dir = tmp_path / "data"
    env = {
        "AILAB_DATA_DIR": str(data_dir),
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_LOG_LEVEL": "debug",
        "AILAB_PROVIDER_TIMEOUT_SECONDS": "5",
        # Nothing may leave this machine: every provider that gets a canary points at a closed port.
        "AILAB_OPENAI_BASE_URL": f"{closed}/v1",
        "AILAB_ANTHROPIC_BASE_URL": closed,
        "AILAB_COHERE_BASE_URL": closed,
        "AILAB_HUGGINGFACE_BASE_URL": f"{closed}/v1",
    }
    responses: list[str] = []

    def keep(response: httpx.Response) -> httpx.Response:
        responses.append(f"{response.status_code} {response.headers} {response.text}")
        return response

    with run_server(env, log_path=tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            for service, key in canaries.items():
                r = keep(await client.post("/api-keys", json={"service_name": service, "api_key": key}))
                assert r.status_code == 200, r.text
            # Failures must not echo it either: a wrong service's format, a bad body, an unknown service.
            r = keep(
                await client.post(
                    "/api-keys", json={"service_name": "anthropic", "api_key": canaries["cohere"]}
                )
            )
            assert r.status_code == 422
            bad_body = {"service_name": "openai", "api_key": canaries["openai"], "config": {"x": {"y": 1}}}
            assert keep(await client.post("/api-keys", json=bad_body)).status_code == 422
            r = keep(
                await client.post("/api-keys", json={"service_name": "nope", "api_key": canaries["openai"]})
            )
            assert r.status_code == 404
            broken = '{"service_name": "openai", "api_key": "' + canaries["openai"] + '"'
            r = keep(
                await client.post("/api-keys", content=broken, headers={"Content-Type": "application/json"})
            )
            assert r.status_code == 400
            for service in canaries:
                r = keep(await client.post(f"/api-keys/{service}/test"))
                assert r.json()["result"] == "unreachable", r.text

            listed = keep(await client.get("/api-keys")).json()["configured_services"]
            assert {e["service_name"]: e["masked_key"] for e in listed} == {
                s: "••••" + k[-4:] for s, k in canaries.items()
            }

            # The walk: every GET route of the OpenAPI schema, path parameters filled with dummies.
            schema = keep(await client.get("/openapi.json")).json()
            walked = 0
            for path, operations in schema["paths"].items():
                if "get" not in operations:
                    continue
                url = re.sub(r"\{[^}]+\}", "dummy", path)
                try:
                    keep(await client.get(url))
                except httpx.TimeoutException:
                    responses.append(f"timeout {url}")
                walked += 1
            assert walked >= 5
            assert any("/api-keys" in r for r in responses)
            # While running: the SQLite file and its -wal/-shm.
            assert scan_files(data_dir, values) == []

    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "DEBUG" in log  # the log really was at debug level
    assert "stored the API key of cohere" in log  # and it does speak about the keys
    for key in values:
        assert key not in log
        assert all(key not in r for r in responses)
    assert scan_files(data_dir, values) == []
    assert any(p.name.startswith("ai_lab.db") for p in data_dir.iterdir())
