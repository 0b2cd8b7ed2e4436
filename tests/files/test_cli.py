"""``ai-lab files list|add|delete`` on a real SQLite file, checked over HTTP as a server would see it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailab.config import Settings
from tests.auth.test_cli import Cli
from tests.conftest import AppClientFactory
from tests.support.documents import pdf_bytes, png_bytes


@pytest.fixture
def cli(settings: Settings, tmp_path: Path) -> Cli:
    return Cli(settings, tmp_path)


async def test_files_are_added_listed_and_deleted_from_the_command_line(
    cli: Cli, settings: Settings, tmp_path: Path, app_client: AppClientFactory
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(pdf_bytes(["The first page.", "The lighthouse keeper's log."]))
    picture = tmp_path / "picture.png"
    picture.write_bytes(png_bytes())
    liar = tmp_path / "liar.pdf"
    liar.write_bytes(png_bytes(10, 10, (0, 0, 255)))

    assert (
        cli("users", "add", "admin", "--admin", "--password-stdin", stdin="admin-password\n").returncode == 0
    )
    added = cli("files", "add", str(report), str(picture), str(liar))
    assert added.returncode == 1  # one was refused
    assert "refused" in added.stderr and "liar.pdf" in added.stderr and "PNG" in added.stderr
    lines = added.stdout.strip().splitlines()
    assert len(lines) == 2
    report_id = lines[0].split()[0]
    assert "2 page(s)" in lines[0]

    again = cli("files", "add", str(report))
    assert again.returncode == 0
    assert "already" in again.stdout

    listed = cli("files", "list")
    assert listed.returncode == 0
    assert "report.pdf" in listed.stdout and "picture.png" in listed.stdout and "liar" not in listed.stdout

    async with app_client(settings) as client:
        hits = (await client.get("/files/search", params={"q": "lighthouse"})).json()["items"]
        assert [(h["file_id"], h["page"]) for h in hits] == [(report_id, 2)]

    assert cli("files", "delete", report_id).returncode == 0
    missing = cli("files", "delete", report_id)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    assert "report.pdf" not in cli("files", "list").stdout
    assert cli("files", "list", "--user", "nobody").returncode == 1


def test_files_help_says_what_each_command_does(cli: Cli) -> None:
    for command in (["files"], ["files", "add"], ["files", "list"], ["files", "delete"]):
        done = cli(*command, "--help")
        assert done.returncode == 0
        assert "Usage" in done.stdout
