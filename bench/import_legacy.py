"""Benchmark of ``ai-lab import legacy``: 10,000 v2 conversation files (100,000 messages).

Generates the files in a temporary folder, then imports them with the same service the CLI uses into a
fresh SQLite file and into a fresh PostgreSQL database (created and dropped here), and prints the time
of the first import and of a second one (which must add nothing). ``--with-db`` adds a v2 ``ai_lab.db``
holding v2's migrated copies of every message, so the JSON/database deduplication is measured too.

    .venv/bin/python bench/import_legacy.py [--sessions 10000] [--messages 10] [--with-db]
        [--pg-dsn postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from ailab.db.engine import Database
from ailab.db.migrate import upgrade
from ailab.db.tables import User
from ailab.services.legacy.importer import ImportReport, LegacyImporter

V2_CONVERSATIONS = """CREATE TABLE conversations (id VARCHAR NOT NULL, session_id VARCHAR, role VARCHAR,
    content TEXT, thought_process TEXT, timestamp DATETIME, PRIMARY KEY (id))"""
AGENTS = ("CEO", "Worker", "QA", "Reflection")


def generate(root: Path, sessions: int, per_session: int, with_db: bool) -> int:
    """Write the v2 files; returns the number of messages."""
    folder = root / "conversations"
    folder.mkdir(parents=True)
    base = dt.datetime(2025, 6, 1, 9, 0, 0)
    migrated = []
    for s in range(sessions):
        session_id = str(1749000000000 + s * 1013)
        start = base + dt.timedelta(minutes=s)
        messages = [
            {
                "role": "User" if i % 2 == 0 else AGENTS[i // 2 % len(AGENTS)],
                "content": f"Message {i} of conversation {s}. "
                + "Lorem ipsum dolor sit amet. " * (1 + i % 5),
                "thought_process": None if i % 2 == 0 else f"ANALYZE: request {i}\nPLAN: answer it",
                "timestamp": (start + dt.timedelta(seconds=7 * i, microseconds=s)).isoformat(),
            }
            for i in range(per_session)
        ]
        (folder / f"{session_id}.json").write_text(json.dumps(messages, indent=2), encoding="utf-8")
        if with_db:
            migrated += [
                (f"{session_id}_{i}", session_id, m["role"], m["content"], m["thought_process"], "2025-06-11")
                for i, m in enumerate(messages)
            ]
    if with_db:
        conn = sqlite3.connect(root / "ai_lab.db")
        with conn:
            conn.execute(V2_CONVERSATIONS)
            conn.executemany("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)", migrated)
        conn.close()
    return sessions * per_session


async def run_import(url: str, source: Path) -> list[tuple[str, float, ImportReport, str]]:
    """Import twice into the database at ``url``; returns (label, seconds, report) per run."""
    db = Database(url)
    try:
        owner = str(uuid.uuid4())
        async with db.write() as session:
            session.add(User(id=owner, name="bench", password_hash="unused", role="user"))
        importer = LegacyImporter(db)
        results = []
        for label in ("first import", "second import"):
            marks: dict[str, float] = {}

            def progress(phase: str, done: int, total: int, marks: dict[str, float] = marks) -> None:
                if done == total:
                    marks[phase] = time.perf_counter()

            start = time.perf_counter()
            report = await importer.import_paths([source], owner, progress=progress)
            end = time.perf_counter()
            read = marks.get("read", start) - start
            phases = f"read {read:.1f} s, merge+write {marks.get('import', end) - start - read:.1f} s"
            results.append((label, end - start, report, phases))
        return results
    finally:
        await db.close()


def show(backend: str, results: list[tuple[str, float, ImportReport, str]]) -> None:
    for label, seconds, report, phases in results:
        m = report.messages
        print(
            f"{backend:<10} {label:<14} {seconds:7.2f} s  sessions +{report.sessions.imported}"
            f" (={report.sessions.already_present})  messages +{m.imported} (={m.already_present})"
            f"  {m.imported / seconds if m.imported else 0:6.0f} msg/s  skipped {m.skipped}  ({phases})"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10, help="messages per conversation")
    parser.add_argument("--with-db", action="store_true", help="add v2's migrated copies in ai_lab.db")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ailab-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        total = generate(root / "v2", args.sessions, args.messages, args.with_db)
        elapsed = time.perf_counter() - start
        print(f"generated {args.sessions} conversation files, {total} messages in {elapsed:.1f} s")

        sqlite_path = root / "ai_lab.db"
        sqlite_url = f"sqlite+aiosqlite:///{sqlite_path}"
        await asyncio.to_thread(upgrade, sqlite_url)
        show("SQLite", await run_import(sqlite_url, root / "v2"))

        name = f"ailab_bench_{uuid.uuid4().hex[:8]}"
        try:
            admin = await asyncpg.connect(args.pg_dsn, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            print(f"PostgreSQL unavailable at {args.pg_dsn}: {exc}")
            return
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = (
                args.pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
                + "/"
                + name
            )
            await asyncio.to_thread(upgrade, url)
            show("PostgreSQL", await run_import(url, root / "v2"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
