"""Import behaviours beyond the sample: a v2 database still in WAL mode, sources that grow, deletions,
the progress bar on a terminal."""

from __future__ import annotations

import os
import pty
import select as io_select
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from ailab.db.engine import Database
from ailab.db.tables import AgentState, ChatSession, Message
from ailab.services.legacy.importer import LegacyImporter
from tests.importer.helpers import AI_LAB, counts, tally
from tests.importer.v2data import V2_SCHEMA, generate, make_messages, snapshot, write_json


async def test_v2_database_with_a_live_wal_is_read_without_touching_it(
    tmp_path: Path, db: Database, owner: str
) -> None:
    folder = tmp_path / "v2"
    folder.mkdir()
    path = folder / "ai_lab.db"
    writer = sqlite3.connect(path)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")  # keep the rows in the -wal file
        writer.executescript(V2_SCHEMA)
        rows = [
            (f"w{i}", "in_wal", "User" if i % 2 == 0 else "CEO", f"m{i}", None, f"2025-06-11 07:00:0{i}")
            for i in range(3)
        ]
        with writer:
            writer.executemany("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)", rows)
        assert path.with_name("ai_lab.db-wal").stat().st_size > 0
        before = snapshot(folder)

        report = await LegacyImporter(db).import_paths([folder], owner)

        assert tally(report)["messages"] == (3, 0, 0)
        assert snapshot(folder) == before
    finally:
        writer.close()
    async with db.read() as session:
        stored = (await session.scalars(select(Message.content).where(Message.session_id == "in_wal"))).all()
    assert list(stored) == ["m0", "m1", "m2"]


async def test_messages_added_to_a_source_later_are_appended(
    tmp_path: Path, db: Database, owner: str
) -> None:
    file = tmp_path / "conversations" / "growing.json"
    messages = make_messages(0, 2)
    write_json(file, messages)
    importer = LegacyImporter(db)
    await importer.import_paths([file.parent], owner)

    write_json(file, [*messages, *make_messages(0, 4)[2:]])
    report = await importer.import_paths([file.parent], owner)

    assert tally(report)["sessions"] == (0, 1, 0)
    assert tally(report)["messages"] == (2, 2, 0)
    async with db.read() as session:
        stored = (await session.scalars(select(Message).order_by(Message.seq))).all()
        row = await session.get(ChatSession, "growing")
    assert [(m.seq, m.content) for m in stored] == [(i, f"message {i} of session 0") for i in range(4)]
    assert row is not None
    assert row.next_seq == 4


async def test_a_session_deleted_after_import_stays_deleted(tmp_path: Path, db: Database, owner: str) -> None:
    source = tmp_path / "v2"
    generate(source, 3, 2)
    importer = LegacyImporter(db)
    await importer.import_paths([source], owner)
    async with db.write() as session:
        for table in (Message, AgentState):
            await session.execute(delete(table).where(table.session_id == "gen_000001"))
        await session.execute(delete(ChatSession).where(ChatSession.id == "gen_000001"))

    report = await importer.import_paths([source], owner)

    assert tally(report)["sessions"] == (0, 3, 0)
    assert (await counts(db))["sessions"] == 2


@pytest.mark.slow
def test_progress_bar_is_drawn_on_a_terminal(
    tmp_path: Path, database_url: str, cli_env: Callable[[str], dict[str, str]]
) -> None:
    source = tmp_path / "v2"
    generate(source, 20, 2)
    controller, terminal = pty.openpty()
    env = {**cli_env(database_url), "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen(
        [str(AI_LAB), "import", "legacy", str(source)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = io_select.select([controller], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        process.wait(timeout=60)
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text
    assert "reading files" in text or "importing sessions" in text
    assert "AI-Lab v2 import" in text
