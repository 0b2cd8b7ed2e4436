"""kill -9 in the middle of an import, then run it again: the same result as one clean import."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ailab.db.engine import Database
from ailab.db.tables import AgentState, ChatSession, Message
from ailab.services.legacy.importer import LegacyImporter
from tests.importer.helpers import AI_LAB, add_user, counts, run_cli, summary
from tests.importer.v2data import generate

pytestmark = pytest.mark.slow  # starts server or CLI processes

SESSIONS = 1500
PER_SESSION = 4
DEADLINE_SECONDS = 120


async def content(db: Database) -> set[tuple[object, ...]]:
    """Everything imported, as comparable tuples (ids and owners aside)."""
    async with db.read() as session:
        messages = await session.execute(
            select(Message.session_id, Message.seq, Message.role, Message.content, Message.created_at)
        )
        states = await session.execute(
            select(AgentState.session_id, AgentState.step, AgentState.input_summary, AgentState.output)
        )
        sessions = await session.execute(select(ChatSession.id, ChatSession.next_seq, ChatSession.created_at))
        return {("m", *r) for r in messages} | {("s", *r) for r in states} | {("c", *r) for r in sessions}


async def wait_for_partial_import(db: Database, process: subprocess.Popen[str]) -> int:
    """Poll until the CLI has committed some sessions (readiness polling, with a deadline)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the import ended before it could be interrupted"
        async with db.read() as session:
            done = int((await session.execute(select(func.count()).select_from(ChatSession))).scalar_one())
        if done > 0:
            return done
        await asyncio.sleep(0.02)
    raise AssertionError("no session was committed before the deadline")


async def test_rerun_after_kill_9_gives_the_same_result_as_a_clean_import(
    tmp_path: Path,
    any_database_url: str,
    sqlite_template: Path,
    cli_env: Callable[[str], dict[str, str]],
) -> None:
    source = tmp_path / "v2"
    generate(source, SESSIONS, PER_SESSION)
    env = cli_env(any_database_url)
    db = Database(any_database_url)
    try:
        # One session per transaction, so the kill lands between many small commits.
        process = subprocess.Popen(
            [str(AI_LAB), "import", "legacy", str(source), "--batch-size", "1"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            await wait_for_partial_import(db, process)
            process.send_signal(signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL

        partial = await counts(db)
        done = partial["sessions"]
        assert 0 < done < SESSIONS
        # Whole sessions or nothing: each committed session has all its messages, its state, its marks.
        assert partial == {
            "sessions": done,
            "messages": done * PER_SESSION,
            "agent_states": done,
            "metrics": 0,
            "fingerprints": done * (1 + PER_SESSION + 1),
        }

        rerun = run_cli(env, str(source), cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert summary(rerun.stdout)["sessions"] == [str(SESSIONS - done), str(done), "0"]

        # The reference: the same input imported once, without interruption, into a fresh database.
        clean_path = tmp_path / "clean" / "ai_lab.db"
        clean_path.parent.mkdir()
        shutil.copyfile(sqlite_template, clean_path)
        clean = Database(f"sqlite+aiosqlite:///{clean_path}")
        try:
            report = await LegacyImporter(clean).import_paths([source], await add_user(clean, "ref"))
            assert not report.skipped_anything
            assert await counts(db) == await counts(clean)
            assert await content(db) == await content(clean)
        finally:
            await clean.close()
        assert (await counts(db))["messages"] == SESSIONS * PER_SESSION
    finally:
        await db.close()
