"""``ai-lab keys``: generic over the installed plugins, on the database alone, with clean errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailab.config import Settings
from tests.auth.test_cli import Cli
from tests.vault.test_formats import AZURE, rand

AZURE_KEY = rand(32, "0123456789abcdef")


@pytest.fixture
def cli(settings: Settings, tmp_path: Path) -> Cli:
    """Runs `ai-lab` commands on this test's database."""
    return Cli(settings, tmp_path)


def test_formats_lists_every_keyed_plugin_with_its_config(cli: Cli) -> None:
    done = cli("keys", "formats")
    assert done.returncode == 0, done.stderr
    for name in ("openai", "anthropic", "gemini (google)", "azure", "ollama", "openai-compat"):
        assert name in done.stdout
    assert "endpoint (required)" in done.stdout
    assert "local" not in done.stdout.split()  # the embedded model takes no key


def test_set_takes_the_config_a_plugin_declares(cli: Cli) -> None:
    config = ["-c", f"endpoint={AZURE['endpoint']}", "--config", f"deployment={AZURE['deployment']}"]
    done = cli("keys", "set", "azure", *config, stdin=AZURE_KEY + "\n")
    assert done.returncode == 0, done.stderr
    assert AZURE_KEY not in done.stdout + done.stderr
    listed = cli("keys", "list")
    assert f"endpoint={AZURE['endpoint']}" in listed.stdout
    assert "••••" + AZURE_KEY[-4:] in listed.stdout


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["-c", "region"], "--config takes NAME=VALUE"),
        (["-c", "region=eu"], "unknown config setting 'region'; allowed: base_url"),
        (["--base-url", "ftp://x"], "base_url must be an http"),
    ],
)
def test_bad_config_is_refused_cleanly_and_stores_nothing(
    cli: Cli, options: list[str], expected: str
) -> None:
    done = cli("keys", "set", "openai", *options, stdin="sk-" + rand(40) + "\n")
    assert done.returncode == 1
    assert expected in done.stderr
    assert "no keys configured" in cli("keys", "list").stdout


def test_account_commands_do_not_load_the_provider_plugins(cli: Cli) -> None:
    cli.env["AILAB_LOCAL_TEMPERATURE"] = "hot"  # a plugin setting that does not validate
    assert cli("users", "list").returncode == 0  # needs the database only
    done = cli("keys", "list")  # the vault validates through the plugins: a clean error naming the variable
    assert done.returncode == 1
    assert "AILAB_LOCAL_TEMPERATURE" in done.stderr
