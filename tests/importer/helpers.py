"""Helpers of the import tests: a user, row counts, the CLI as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ailab.db.engine import Database
from ailab.db.tables import AgentState, ChatSession, ImportedItem, Message, PerformanceMetric, User

AI_LAB = Path(sys.executable).with_name("ai-lab")


async def add_user(db: Database, name: str) -> str:
    """Insert a user directly (no password hashing needed here); returns its id."""
    user_id = str(uuid.uuid4())
    async with db.write() as session:
        session.add(User(id=user_id, name=name, password_hash="unused", role="user"))
    return user_id


async def counts(db: Database) -> dict[str, int]:
    """Rows per imported kind, and the fingerprints recorded."""
    result = {}
    async with db.read() as session:
        for name, table in (
            ("sessions", ChatSession),
            ("messages", Message),
            ("agent_states", AgentState),
            ("metrics", PerformanceMetric),
            ("fingerprints", ImportedItem),
        ):
            result[name] = int((await session.execute(select(func.count()).select_from(table))).scalar_one())
    return result


def run_cli(
    env: dict[str, str], *args: str, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``ai-lab import legacy ARGS`` to completion (stdout is a pipe: no progress bar)."""
    return subprocess.run(
        [str(AI_LAB), "import", "legacy", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tally(report: Any) -> dict[str, tuple[int, int, int]]:
    """An ImportReport as ``{row: (imported, already present, skipped)}``."""
    return {name: (t.imported, t.already_present, t.skipped) for name, t in report.rows()}


def summary(stdout: str) -> dict[str, list[str]]:
    """The CLI's summary table: ``{row: [imported, already present, skipped]}``."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 6 and cells[1]:
            rows[cells[1]] = cells[2:5]
    return rows
