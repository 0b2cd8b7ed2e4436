"""Master keys end to end with real processes: `keys set` from stdin, `keys rotate`, refusing to start."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import make_url

from ailab.config import Settings
from tests.conftest import ADMIN_PASSWORD, AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.support.postgres import free_port
from tests.support.server import run_server
from tests.vault.conftest import last_bearer
from tests.vault.procs import acli, cli

pytestmark = pytest.mark.slow  # starts server or CLI processes

AZURE_KEY = "0123456789abcdef" * 2


def base_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {"AILAB_DATA_DIR": str(data_dir), "AILAB_DATABASE_URL": database_url, **extra}


def sqlite_ciphertexts(database_url: str) -> dict[str, str]:
    path = make_url(database_url).database
    assert path
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT service, ciphertext FROM api_keys").fetchall())


def decrypts_with(key: str, ciphertext: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(ciphertext.removeprefix("v1:").encode())
    except InvalidToken:
        return False
    return True


async def test_rotate_from_a_to_b_then_start_with_b_only(
    any_database_url: str,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    app_client: AppClientFactory,
    openai_server: FakeOpenAI,
) -> None:
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = base_env(tmp_path / "data", any_database_url, AILAB_MASTER_KEY=key_a)

    # `keys set` reads the key from stdin: it is in no argv and in no output.
    done = await acli(env, "keys", "set", "openai", stdin=openai_server.api_key + "\n")
    assert done.returncode == 0, done.output
    assert openai_server.api_key not in done.output
    assert openai_server.api_key[-4:] in done.output
    endpoint = ["--config", "endpoint=https://res1.openai.azure.com", "-c", "deployment=gpt4o"]
    done = await acli(env, "keys", "set", "azure", *endpoint, stdin=AZURE_KEY)
    assert done.returncode == 0, done.output
    bad = await acli(env, "keys", "set", "azure", stdin=AZURE_KEY)
    assert bad.returncode == 1
    assert "config endpoint, deployment is required" in bad.stderr
    assert "Traceback" not in bad.output

    rotated = await acli({**env, "AILAB_MASTER_KEY": f"{key_b},{key_a}"}, "keys", "rotate")
    assert rotated.returncode == 0, rotated.output
    assert "re-encrypted 2 key(s)" in rotated.stdout

    settings = make_settings(
        database_url=any_database_url, master_key=key_b, openai_base_url=openai_server.base_url
    )
    async with app_client(settings) as client:
        vault = client.services.vault  # type: ignore[attr-defined]
        assert (await vault.get("openai")).api_key == openai_server.api_key
        assert (await vault.get("azure")).api_key == AZURE_KEY
        r = await client.post("/api-keys/openai/test")
        assert r.json()["result"] == "valid", r.json()
        listed = (await client.get("/api-keys")).json()["configured_services"]
        assert {e["service_name"]: e["masked_key"] for e in listed} == {
            "azure": "••••" + AZURE_KEY[-4:],
            "openai": "••••" + openai_server.api_key[-4:],
        }

    # The old key alone no longer opens them: it really was retired.
    listing = await acli({**env, "AILAB_MASTER_KEY": key_a}, "keys", "test", "azure")
    assert listing.returncode == 1
    assert "cannot be decrypted" in listing.stdout


def test_serve_refuses_to_start_with_a_wrong_master_key(database_url: str, tmp_path: Path) -> None:
    key_a = Fernet.generate_key().decode()
    env = base_env(tmp_path / "data", database_url, AILAB_MASTER_KEY=key_a)
    assert cli(env, "keys", "set", "cohere", stdin="A" * 40).returncode == 0

    wrong = {**env, "AILAB_MASTER_KEY": Fernet.generate_key().decode(), "AILAB_PORT": str(free_port())}
    done = cli(wrong, "serve")
    assert done.returncode == 1, done.output
    assert "AILAB_MASTER_KEY" in done.stderr
    assert "cannot be decrypted" in done.stderr
    assert "Traceback" not in done.output

    # The same with the key file: a file holding another key, and no file at all.
    file_env = base_env(tmp_path / "data", database_url, AILAB_PORT=str(free_port()))
    (tmp_path / "data" / "master.key").write_text(Fernet.generate_key().decode() + "\n")
    done = cli(file_env, "serve")
    assert done.returncode == 1
    assert "AILAB_MASTER_KEY" in done.stderr
    assert "master.key" in done.stderr
    (tmp_path / "data" / "master.key").unlink()
    done = cli(file_env, "serve")
    assert done.returncode == 1
    assert "no master key" in done.stderr
    assert not (tmp_path / "data" / "master.key").exists()
    assert "Traceback" not in done.output

    # A malformed AILAB_MASTER_KEY is refused with the setting's name too.
    done = cli({**env, "AILAB_MASTER_KEY": "not-a-key"}, "serve")
    assert done.returncode == 1
    assert "AILAB_MASTER_KEY" in done.stderr
    assert "Traceback" not in done.output


async def test_key_file_rotation_while_the_server_runs(
    database_url: str, tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    data_dir = tmp_path / "data"
    env = base_env(
        data_dir,
        database_url,
        AILAB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        AILAB_OPENAI_BASE_URL=openai_server.base_url,
    )
    key_file = data_dir / "master.key"
    with run_server(env, log_path=tmp_path / "server.log") as server:
        old_keys = key_file.read_text().split()
        assert len(old_keys) == 1
        assert key_file.stat().st_mode & 0o777 == 0o600
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            r = await client.post(
                "/api-keys", json={"service_name": "openai", "api_key": openai_server.api_key}
            )
            assert r.status_code == 200, r.text
            assert (await client.post("/api-keys/openai/test")).json()["result"] == "valid"

            rotated = await acli(env, "keys", "rotate")
            assert rotated.returncode == 0, rotated.output
            new_keys = key_file.read_text().split()
            assert len(new_keys) == 1
            assert new_keys != old_keys
            assert key_file.stat().st_mode & 0o777 == 0o600
            (ciphertext,) = sqlite_ciphertexts(database_url).values()
            assert decrypts_with(new_keys[0], ciphertext)
            assert not decrypts_with(old_keys[0], ciphertext)

            # The running server re-reads the key file: the rotated key still works, no restart.
            r = await client.post("/api-keys/openai/test")
            assert r.json()["result"] == "valid", r.json()
            assert last_bearer(openai_server) == openai_server.api_key
            listed = (await client.get("/api-keys")).json()["configured_services"]
            assert listed[0]["masked_key"] == "••••" + openai_server.api_key[-4:]
            # And what it stores now is under the new key.
            r = await client.post("/api-keys", json={"service_name": "cohere", "api_key": "C" * 40})
            assert r.status_code == 200
        assert "Traceback" not in server.log()

    stored = sqlite_ciphertexts(database_url)
    assert set(stored) == {"openai", "cohere"}
    assert all(decrypts_with(new_keys[0], c) for c in stored.values())
    # A restart on the rotated file starts and serves (the start-up check passes).
    with run_server(env, log_path=tmp_path / "server2.log") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            r = await client.post("/api-keys/openai/test", headers=headers)
            assert r.json()["result"] == "valid"


def test_cli_refuses_to_mix_master_keys(database_url: str, tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", database_url, AILAB_MASTER_KEY=Fernet.generate_key().decode())
    assert cli(env, "keys", "set", "cohere", stdin="A" * 40).returncode == 0
    before = sqlite_ciphertexts(database_url)
    other = {**env, "AILAB_MASTER_KEY": Fernet.generate_key().decode()}
    done = cli(other, "keys", "set", "huggingface", stdin="hf_" + "b" * 34)
    assert done.returncode == 1
    assert "AILAB_MASTER_KEY" in done.stderr
    assert "Traceback" not in done.output
    assert sqlite_ciphertexts(database_url) == before
    # Deleting needs no decryption, so a broken vault can always be cleaned up.
    assert cli(other, "keys", "delete", "cohere").returncode == 0
    assert sqlite_ciphertexts(database_url) == {}
