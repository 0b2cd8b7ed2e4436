"""The performance history's cost per request: what recording two samples (the route's and the model's)
and writing them costs the server, with and without sampling under load.

    .venv/bin/python bench/history.py                     # SQLite, 4,000 requests/s for 10 s of flushes
    .venv/bin/python bench/history.py --rate 500 --pg-dsn postgresql://postgres@127.0.0.1:5432/postgres

Feeds a real ``HistoryWriter`` (the server's, on a fresh migrated database) the observations of ``rate``
requests per second, one flush interval at a time, and flushes after each as the background task does;
reports this process's CPU time (every thread: the event loop and SQLite's writer) per request, and the
rows written. ``--samples-per-second 0`` keeps every observation (no sampling: the cost before it).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
import uvloop

from ailab.db.engine import Database
from ailab.db.migrate import upgrade
from ailab.services.monitoring.history import HistoryWriter

FLUSH_SECONDS = 2.0


async def run(url: str, rate: int, flushes: int, samples_per_second: int) -> dict[str, float]:
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    every = samples_per_second or rate * 10  # "0": a sample size past anything seen, so all are kept
    writer = HistoryWriter(
        db, flush_seconds=FLUSH_SECONDS, retention_days=1, on_drop=lambda _n: None, samples_per_second=every
    )
    writer.max_buffered = 10**9
    per_flush = int(rate * FLUSH_SECONDS)
    extra = {"ttft_ms": None, "prompt_tokens": 12, "completion_tokens": 9, "stream": False}
    rows = 0
    cpu = time.process_time()
    for _ in range(flushes):
        for i in range(per_flush):
            writer.add("http", "POST /v1/chat/completions", 0.25 + i % 7, ok=True, extra={"status": 200})
            writer.add("llm", "openai_compat/fake", 0.2 + i % 5, ok=i % 100 != 0, extra=extra)
        rows += await writer.flush()
    spent = time.process_time() - cpu
    await db.close()
    requests = per_flush * flushes
    return {"cpu_us_per_request": spent / requests * 1e6, "rows_per_request": rows / requests}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=4000, help="requests per second")
    parser.add_argument("--flushes", type=int, default=5, help="flush intervals (2 s of requests each)")
    parser.add_argument("--pg-dsn", help="also run on fresh databases of this PostgreSQL server")
    args = parser.parse_args()
    print(f"{args.rate} requests/s, {args.flushes} flushes of {FLUSH_SECONDS:g} s, 2 samples a request")
    admin = await asyncpg.connect(args.pg_dsn) if args.pg_dsn else None
    created: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for samples in (0, 100):
                label = "every observation" if samples == 0 else f"{samples} samples/s per name"
                urls = [("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / f'history-{samples}.db'}")]
                if admin is not None and args.pg_dsn:
                    name = f"ailab_bench_history_{int(time.time())}_{samples}"
                    await admin.execute(f'CREATE DATABASE "{name}"')
                    created.append(name)
                    server = args.pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
                    urls.append(("postgresql", f"{server}/{name}"))
                for kind, url in urls:
                    result = await run(url, args.rate, args.flushes, samples)
                    print(
                        f"  {kind:<10} {label:<26} {result['cpu_us_per_request']:7.1f} us CPU/request"
                        f"  {result['rows_per_request']:.3f} rows/request"
                    )
    finally:
        if admin is not None:
            for name in created:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    uvloop.run(main())
