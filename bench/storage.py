"""Storage benchmark: concurrent appends and history reads on SQLite and PostgreSQL.

    .venv/bin/python bench/storage.py                    # 100,000 messages, 1,000 sessions, 16 writers
    .venv/bin/python bench/storage.py --messages 20000   # a quicker run
    .venv/bin/python bench/storage.py --pg-dsn postgresql://postgres@127.0.0.1:5432/postgres

Each writer appends through the same service the API uses (appends that arrive together share one
transaction, ``db/group_commit.py``; numbers allocated under each session's row lock). Reads fetch a
200-message history by keyset, as the chat view does.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import uvloop

from ailab.db.engine import Database
from ailab.db.migrate import upgrade
from ailab.services.sessions.service import SessionService


async def run(url: str, sessions: int, messages: int, writers: int, reads: int) -> dict[str, float]:
    await asyncio.to_thread(upgrade, url)
    db = Database(url, pool_size=writers, max_overflow=0)
    service = SessionService(db)
    ids = [(await service.create(None, f"bench {i}")).id for i in range(sessions)]
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for n in range(messages):
        queue.put_nowait((ids[n % sessions], n))

    async def writer() -> None:
        while not queue.empty():
            session_id, n = queue.get_nowait()
            await service.append(None, session_id, "user", f"message {n} " + "lorem ipsum " * 8)

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    append_seconds = time.perf_counter() - start

    latencies = []
    for _ in range(reads):
        session_id = random.choice(ids)
        t0 = time.perf_counter()
        rows = await service.messages(None, session_id, after_seq=-1, limit=200)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert rows, "empty history"
    await db.close()
    latencies.sort()
    return {
        "appends_per_s": messages / append_seconds,
        "read_p50_ms": statistics.median(latencies),
        "read_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--reads", type=int, default=2_000)
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    per_session = args.messages // args.sessions
    print(
        f"{args.messages} messages over {args.sessions} sessions ({per_session} each), {args.writers} writers"
    )
    print(f"{'database':<12}{'appends/s':>12}{'read p50 ms':>14}{'read p99 ms':>14}")

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        r = await run(url, args.sessions, args.messages, args.writers, args.reads)
        print(f"{'SQLite':<12}{r['appends_per_s']:>12.0f}{r['read_p50_ms']:>14.2f}{r['read_p99_ms']:>14.2f}")

    if args.skip_postgres:
        return
    name = f"ailab_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(args.pg_dsn)
    except OSError as exc:
        print(f"PostgreSQL skipped: {exc}")
        return
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = args.pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        r = await run(f"{base}/{name}", args.sessions, args.messages, args.writers, args.reads)
        print(
            f"{'PostgreSQL':<12}{r['appends_per_s']:>12.0f}{r['read_p50_ms']:>14.2f}{r['read_p99_ms']:>14.2f}"
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    uvloop.run(main())  # the server's event loop (uvicorn runs on uvloop)
