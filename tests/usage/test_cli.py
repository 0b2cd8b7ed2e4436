"""``ai-lab usage`` prints what the server stored, as ``GET /usage`` shows admins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ailab.config import Settings
from tests.auth.test_cli import Cli
from tests.conftest import AppClientFactory
from tests.usage.conftest import MODEL, add_user, chat_body


async def test_the_usage_command_prints_the_stored_usage(
    usage_settings: Callable[..., Settings], app_client: AppClientFactory, tmp_path: Path
) -> None:
    settings = usage_settings()
    async with app_client(settings) as client:
        alice = await add_user(client, "alice")
        for _ in range(3):
            assert (await client.post("/chat", json=chat_body(), headers=alice.headers)).status_code == 200
    # The app has shut down: its last counts were written then.
    cli = Cli(settings, tmp_path)
    by_user = cli("usage")
    assert by_user.returncode == 0, by_user.stderr
    row = next(line for line in by_user.stdout.splitlines() if "alice" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][:2] == ["alice", "3"]  # her requests
    by_model = cli("usage", "--group-by", "model", "--user", "alice")
    assert by_model.returncode == 0 and MODEL in by_model.stdout
    unknown = cli("usage", "--user", "nobody")
    assert unknown.returncode == 1 and "no user 'nobody'" in unknown.stderr
    assert cli("usage", "--group-by", "session").returncode == 2
