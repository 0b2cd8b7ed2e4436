"""``ai-lab users`` and ``ai-lab tokens`` on a real SQLite file, checked over HTTP.

The commands run in this process through Typer's runner (the real CLI code, from argument parsing to
exit codes, without an interpreter start per call), each in a thread of its own, as the CLI runs its own
event loop; a real process checks the entry point once. Each HTTP check starts the app afresh on the
same database, as a server would see the CLI's changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ailab.cli import app
from ailab.config import Settings
from tests.conftest import AppClientFactory

CLI = str(Path(sys.executable).with_name("ai-lab"))


@dataclass(frozen=True)
class Done:
    """What a command did: its exit code and output."""

    returncode: int
    stdout: str
    stderr: str


class Cli:
    """Runs ``ai-lab`` commands with the environment of one test's data dir and database."""

    def __init__(self, settings: Settings, cwd: Path) -> None:
        assert settings.master_key is not None
        self.env = {
            "AILAB_DATA_DIR": str(settings.data_dir),
            "AILAB_DATABASE_URL": settings.sqlalchemy_url,
            "AILAB_MASTER_KEY": settings.master_key.get_secret_value(),
        }
        self.cwd = cwd

    def __call__(self, *args: str, stdin: str = "") -> Done:
        def run() -> Done:
            result = CliRunner().invoke(app, list(args), input=stdin, env=self.env, catch_exceptions=False)
            return Done(result.exit_code, result.stdout, result.stderr)

        with ThreadPoolExecutor(max_workers=1) as thread:  # the CLI runs its own event loop
            done = thread.submit(run).result(timeout=120)
        assert "Traceback" not in done.stderr, done.stderr
        return done


@pytest.fixture
def cli(settings: Settings, tmp_path: Path) -> Cli:
    """Runs `ai-lab` commands on this test's database."""
    return Cli(settings, tmp_path)


async def http_login(app_client: AppClientFactory, settings: Settings, name: str, password: str) -> int:
    async with app_client(settings, login=False) as client:
        response = await client.post("/auth/login", json={"username": name, "password": password})
        return response.status_code


async def http_me(app_client: AppClientFactory, settings: Settings, token: str) -> httpx.Response:
    async with app_client(settings, login=False) as client:
        return await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


async def test_users_commands(cli: Cli, settings: Settings, app_client: AppClientFactory) -> None:
    refused = cli("users", "add", "alice")
    assert refused.returncode != 0
    assert "--password-stdin" in refused.stderr
    extra = cli("users", "add", "alice", "on-the-command-line")
    assert extra.returncode != 0
    assert "on-the-command-line" not in cli("users", "list").stdout

    added = cli("users", "add", "alice", "--password-stdin", stdin="alice-password\n")
    assert added.returncode == 0, added.stderr
    assert "alice-password" not in added.stdout + added.stderr
    assert await http_login(app_client, settings, "alice", "alice-password") == 200
    again = cli("users", "add", "alice", "--password-stdin", stdin="another-password\n")
    assert again.returncode == 1
    assert "exists already" in again.stderr
    short = cli("users", "add", "bob", "--admin", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert "at least 8" in short.stderr
    assert cli("users", "add", "bob", "--admin", "--password-stdin", stdin="bob-password\n").returncode == 0

    listed = cli("users", "list").stdout
    rows = {line.split()[1]: line for line in listed.splitlines() if "alice" in line or "bob" in line}
    assert "user" in rows["alice"]
    assert "admin" in rows["bob"]

    assert cli("users", "disable", "alice").returncode == 0
    assert await http_login(app_client, settings, "alice", "alice-password") == 401
    assert "yes" in next(line for line in cli("users", "list").stdout.splitlines() if "alice" in line)
    assert cli("users", "enable", "alice").returncode == 0
    assert cli("users", "passwd", "alice", "--password-stdin", stdin="changed-password\n").returncode == 0
    assert await http_login(app_client, settings, "alice", "alice-password") == 401
    assert await http_login(app_client, settings, "alice", "changed-password") == 200

    unconfirmed = cli("users", "delete", "alice")
    assert unconfirmed.returncode != 0
    assert "--yes" in unconfirmed.stderr
    assert await http_login(app_client, settings, "alice", "changed-password") == 200
    assert cli("users", "delete", "alice", "--yes").returncode == 0
    assert await http_login(app_client, settings, "alice", "changed-password") == 401
    missing = cli("users", "disable", "alice")
    assert missing.returncode == 1
    assert "no user 'alice'" in missing.stderr


async def test_tokens_commands(cli: Cli, settings: Settings, app_client: AppClientFactory) -> None:
    assert cli("users", "add", "carol", "--password-stdin", stdin="carol-password\n").returncode == 0
    created = cli("tokens", "create", "laptop", "--user", "carol")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n"  # the token alone, so scripts can capture it
    assert token.startswith("ailab_")
    me = await http_me(app_client, settings, token)
    assert me.status_code == 200
    assert me.json()["username"] == "carol"

    admin_token = cli("tokens", "create", "ops").stdout.strip()  # --user defaults to admin
    assert (await http_me(app_client, settings, admin_token)).json()["username"] == "admin"

    listed = cli("tokens", "list")
    assert listed.returncode == 0
    assert token not in listed.stdout
    assert "laptop" in listed.stdout
    assert "carol" in listed.stdout
    async with app_client(settings, login=False) as client:
        headers = {"Authorization": f"Bearer {token}"}
        token_id = (await client.get("/auth/tokens", headers=headers)).json()["items"][0]["id"]
    assert token_id in listed.stdout

    revoked = cli("tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert (await http_me(app_client, settings, token)).status_code == 401
    assert (await http_me(app_client, settings, admin_token)).status_code == 200
    unknown = cli("tokens", "revoke", "no-such-id")
    assert unknown.returncode == 1
    assert "no API token" in unknown.stderr
    nobody = cli("tokens", "create", "x", "--user", "nobody")
    assert nobody.returncode == 1
    assert nobody.stdout == ""


@pytest.mark.parametrize(
    "command",
    [
        ["users"],
        ["users", "add"],
        ["users", "list"],
        ["users", "disable"],
        ["users", "enable"],
        ["users", "delete"],
        ["users", "passwd"],
        ["tokens"],
        ["tokens", "create"],
        ["tokens", "list"],
        ["tokens", "revoke"],
    ],
)
def test_every_command_has_help(command: list[str], make_settings: Callable[..., Settings]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.stdout
    assert len(result.stdout.splitlines()) > 5


@pytest.mark.slow  # a real process
def test_the_entry_point_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    result = subprocess.run([CLI, "users", "--help"], check=False, capture_output=True, text=True, env=env)
    assert result.returncode == 0
    assert "add" in result.stdout and "passwd" in result.stdout
