"""Files benchmark: ingest a long PDF and many small files, then search them.

    .venv/bin/python bench/files.py                          # SQLite: 200-page PDF, 1,000 small files
    .venv/bin/python bench/files.py --pg-dsn postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/files.py --pdf-pages 50 --small-files 200   # a quicker run

Everything goes through the app's own routes (``POST /files`` multipart, ``GET /files/search``) in this
process, with the real extraction workers: it prints PDF pages read per second (upload to ``ready``),
small files stored and read per second, and search latency p50/p99 over the whole corpus.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.documents import pdf_bytes

from ailab.app import create_app
from ailab.config import Settings
from ailab.db.migrate import upgrade
from ailab.services.container import Services

VOCABULARY = """
contract invoice payment delivery warranty liability notice termination renewal schedule audit clause party
supplier customer service level penalty credit refund dispute arbitration court law property license
confidential data breach security backup region storage network latency budget report revenue margin
forecast quarter growth market product release roadmap feature
"""
WORDS = VOCABULARY.split()
PASSWORD = "bench-password"


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def page_text(rng: random.Random, number: int) -> str:
    return f"Page {number}. " + " ".join(sentence(rng, rng.randint(8, 16)) for _ in range(20))


async def fresh_postgres(dsn: str) -> str:
    name = f"ailab_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, float]:
    url = (
        await fresh_postgres(args.pg_dsn) if args.pg_dsn else f"sqlite+aiosqlite:///{data_dir / 'ai_lab.db'}"
    )
    await asyncio.to_thread(upgrade, url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        database_url=url,
        admin_password=PASSWORD,
        upload_wait_seconds=0,
        extract_workers=args.workers,
        log_level="warning",
    )
    app = create_app(settings, migrate=False)
    rng = random.Random(7)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        token = services.auth.issue_access_token(await services.auth.local_admin())
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
            pdf = pdf_bytes([page_text(rng, n + 1) for n in range(args.pdf_pages)])
            start = time.perf_counter()
            response = await client.post("/files", files={"file": ("long.pdf", pdf)})
            assert response.status_code in (201, 202), response.text
            await services.files.wait_read(response.json()["id"])
            pdf_seconds = time.perf_counter() - start
            file = (await client.get(f"/files/{response.json()['id']}")).json()
            assert (file["status"], file["pages"]) == ("ready", args.pdf_pages), file

            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(args.small_files):
                queue.put_nowait(n)

            async def uploader() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    body = f"# Note {n}\n\n" + "\n\n".join(sentence(rng, 12) for _ in range(12))
                    answer = await client.post("/files", files={"file": (f"note-{n}.md", body.encode())})
                    assert answer.status_code in (201, 202), answer.text
                    await services.files.wait_read(answer.json()["id"])

            start = time.perf_counter()
            await asyncio.gather(*(uploader() for _ in range(args.concurrency)))
            small_seconds = time.perf_counter() - start

            latencies = []
            for _ in range(args.searches):
                query = " ".join(rng.sample(WORDS, 3))
                t0 = time.perf_counter()
                found = await client.get("/files/search", params={"q": query, "limit": 10})
                latencies.append((time.perf_counter() - t0) * 1000)
                assert found.status_code == 200, found.text
                assert found.json()["items"], query
    latencies.sort()
    return {
        "pdf_pages_per_s": args.pdf_pages / pdf_seconds,
        "small_files_per_s": args.small_files / small_seconds,
        "search_p50_ms": statistics.median(latencies),
        "search_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pdf-pages", type=int, default=200)
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="small files uploaded at once")
    parser.add_argument("--workers", type=int, default=1, help="extraction worker processes")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--pg-dsn", default="", help="run on PostgreSQL (a database is created there)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ailab-bench-files-") as tmp:
        figures = asyncio.run(run(args, Path(tmp)))
    database = "PostgreSQL" if args.pg_dsn else "SQLite"
    print(f"{database}: {args.pdf_pages}-page PDF, {args.small_files} small files, {args.searches} searches")
    print(f"  PDF pages read        {figures['pdf_pages_per_s']:8.1f} pages/s (upload to ready)")
    print(f"  small files stored    {figures['small_files_per_s']:8.1f} files/s")
    print(f"  search p50 / p99      {figures['search_p50_ms']:8.2f} / {figures['search_p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
