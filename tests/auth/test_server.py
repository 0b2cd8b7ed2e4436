"""The real ``ai-lab serve`` process: AILAB_AUTH=off only on loopback, and the first admin's password file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from ailab.services.auth.throttle import ADDRESS_DELAY_S
from tests.conftest import ADMIN_PASSWORD
from tests.support.postgres import free_port
from tests.support.server import run_server

pytestmark = pytest.mark.slow  # starts server or CLI processes

CLI = str(Path(sys.executable).with_name("ai-lab"))


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    env.update(
        AILAB_DATA_DIR=str(tmp_path / "data"), AILAB_MASTER_KEY=Fernet.generate_key().decode(), **extra
    )
    return env


def test_auth_off_refuses_to_serve_on_a_public_address(tmp_path: Path) -> None:
    env = clean_env(tmp_path, AILAB_AUTH="off", AILAB_PORT=str(free_port()))
    for args, host_env in ((["--host", "0.0.0.0"], {}), ([], {"AILAB_HOST": "0.0.0.0"})):
        result = subprocess.run(
            [CLI, "serve", *args],
            env={**env, **host_env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert "AILAB_AUTH" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert not (tmp_path / "data" / "ai_lab.db").exists()  # refused before touching anything


def test_auth_off_on_loopback_serves_without_credentials(tmp_path: Path) -> None:
    env = clean_env(tmp_path, AILAB_AUTH="off")
    with (
        run_server(env, "--host", "127.0.0.1", log_path=tmp_path / "log") as server,
        httpx.Client() as client,
    ):
        created = client.post(f"{server.base_url}/sessions", json={"title": "local"})
        assert created.status_code == 201, created.text
        listed = client.get(f"{server.base_url}/sessions")
        assert listed.status_code == 200
        assert [s["title"] for s in listed.json()["items"]] == ["local"]
        assert client.get(f"{server.base_url}/auth/me").json()["username"] == "admin"


def test_auth_on_by_default_and_initial_admin_password_file(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    password_file = tmp_path / "data" / "initial-admin-password"
    with run_server(env, log_path=tmp_path / "log1") as server, httpx.Client() as client:
        assert client.get(f"{server.base_url}/sessions").status_code == 401
        assert password_file.exists()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        password = password_file.read_text().strip()
        assert len(password) >= 16
        log = server.log()
        assert str(password_file) in log
        assert password not in log
        login = client.post(f"{server.base_url}/auth/login", json={"username": "admin", "password": password})
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert client.get(f"{server.base_url}/sessions", headers=headers).status_code == 200
    # A second start keeps the admin and the file as they are and logs no new password.
    with run_server(env, log_path=tmp_path / "log2") as server, httpx.Client() as client:
        assert password_file.read_text().strip() == password
        assert "initial-admin-password" not in server.log()
        login = client.post(f"{server.base_url}/auth/login", json={"username": "admin", "password": password})
        assert login.status_code == 200


def test_behind_a_proxy_the_forwarded_client_is_the_address(tmp_path: Path) -> None:
    def slowed_after_a_spray(env: dict[str, str]) -> tuple[float, float]:
        """How long the 13th guess from 203.0.113.9 and a guess from 203.0.113.10 took (proxy-forwarded)."""
        with run_server(env, log_path=tmp_path / f"log-{len(env)}") as server, httpx.Client() as client:

            def guess(name: str, client_ip: str) -> float:
                started = time.monotonic()
                response = client.post(
                    f"{server.base_url}/auth/login",
                    json={"username": name, "password": "not-it-at-all"},
                    headers={"X-Forwarded-For": client_ip},
                )
                assert response.status_code == 401
                return time.monotonic() - started

            for i in range(12):  # the address limit: 3 failures x 4
                guess(f"user{i}", "203.0.113.9")
            return guess("user99", "203.0.113.9"), guess("user98", "203.0.113.10")

    base = {
        "AILAB_DATA_DIR": str(tmp_path / "data"),
        "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AILAB_LOGIN_MAX_FAILURES": "3",
    }
    sprayer, neighbour = slowed_after_a_spray({**base, "AILAB_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    assert sprayer >= ADDRESS_DELAY_S  # the client the proxy named is slowed down ...
    assert neighbour < ADDRESS_DELAY_S  # ... not everyone behind the proxy
    # Without the setting the header is not believed: every request comes from the proxy, 127.0.0.1.
    sprayer, neighbour = slowed_after_a_spray({**base, "AILAB_DATA_DIR": str(tmp_path / "data2")})
    assert sprayer >= ADDRESS_DELAY_S and neighbour >= ADDRESS_DELAY_S
