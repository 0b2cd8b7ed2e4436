"""Row ids and the cost of a stored turn: random UUIDs (version 4) against time-ordered ones (version 7).

Each ``/chat`` turn inserts a session, a run and two messages in two transactions; this replays those
statements with raw ``sqlite3`` on AI-Lab's own schema (``ai-lab db upgrade`` into a temporary data
dir) with the server's pragmas, and prints microseconds per turn as the tables grow. Random keys land
on random b-tree pages, so that cost climbs with the table; ordered keys keep it flat::

    .venv/bin/python bench/ids.py [--turns 60000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ailab.ids import time_ordered_id

STEP = 20_000


def fresh_schema(workdir: Path) -> Path:
    """An empty AI-Lab database, migrated to head."""
    data = workdir / "data"
    env = {**os.environ, "AILAB_DATA_DIR": str(data)}
    cli = Path(sys.executable).with_name("ai-lab")
    subprocess.run([str(cli), "db", "upgrade"], env=env, check=True, capture_output=True)
    return data / "ai_lab.db"


def replay(template: Path, workdir: Path, new_id: Callable[[], str], turns: int) -> list[float]:
    """Microseconds per turn over each ``STEP`` turns."""
    path = workdir / "bench.db"
    for leftover in (path, path.with_name("bench.db-wal"), path.with_name("bench.db-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copy(template, path)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=10000"):
        conn.execute(f"PRAGMA {pragma}")
    now = dt.datetime.now(dt.UTC).isoformat()
    laps: list[float] = []
    lap = time.perf_counter()
    for done in range(1, turns + 1):
        session_id, run_id = new_id(), new_id()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO sessions (id, owner_id, title, next_seq, created_at, updated_at) "
            "VALUES (?, NULL, '', 2, ?, ?)",
            (session_id, now, now),
        )
        conn.execute(
            "INSERT INTO messages (session_id, seq, role, content, status, created_at) "
            "VALUES (?, 0, 'user', 'Say hello.', 'complete', ?)",
            (session_id, now),
        )
        conn.execute(
            "INSERT INTO runs (id, session_id, owner_id, status, pipeline, instance_id, lease_until, "
            "created_at, last_event_id) VALUES (?, ?, NULL, 'running', 'direct', 'bench', ?, ?, 0)",
            (run_id, session_id, now, now),
        )
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO messages (session_id, seq, role, content, status, created_at) "
            "VALUES (?, 1, 'assistant', 'Hello!', 'complete', ?)",
            (session_id, now),
        )
        conn.execute("UPDATE runs SET status = 'done', finished_at = ? WHERE id = ?", (now, run_id))
        conn.execute("COMMIT")
        if done % STEP == 0:
            end = time.perf_counter()
            laps.append((end - lap) / STEP * 1e6)
            lap = end
    conn.close()
    return laps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each kind")
    args = parser.parse_args()
    kinds: dict[str, Callable[[], str]] = {"uuid4": lambda: str(uuid.uuid4()), "uuid7": time_ordered_id}
    workdir = Path(tempfile.mkdtemp(prefix="ailab-ids-"))
    try:
        template = fresh_schema(workdir)
        print(f"us per turn (2 transactions), every {STEP:,} turns")
        for _ in range(args.rounds):
            for name, new_id in kinds.items():
                laps = replay(template, workdir, new_id, args.turns)
                print(f"  {name}: " + "  ".join(f"{lap:6.0f}" for lap in laps), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
