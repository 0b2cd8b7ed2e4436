"""Faults, at length: what the test suite checks quickly, repeated and measured.

1. PostgreSQL restarted (``pg_ctl restart``, a throwaway cluster made with ``initdb``) while 16 writers
   post messages through a real ``ai-lab serve``: how many requests failed and how (every failure must be a
   503), how long until writes succeed again, and whether every acknowledged message is there exactly once.
2. ``kill -9`` of the server mid-write, several rounds, on SQLite and on that PostgreSQL: acknowledged,
   lost, doubled.
3. An upstream that stalls, resets mid-stream or answers garbage: the status or stream event each path
   answers (``/chat`` JSON and stream, ``/v1`` JSON and stream)::

    .venv/bin/python bench/faults.py [--rounds 3] [--writers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_server import FakeOpenAI  # noqa: E402 - the repo's own fakes
from tests.support import postgres  # noqa: E402
from tests.support.server import (  # noqa: E402
    ADMIN_PASSWORD,
    LiveServer,
    run_server,
    server_env,
    stored_messages,
)


@dataclass
class Writes:
    acknowledged: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    first_failure: float | None = None
    last_failure: float | None = None


async def token(base_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def write(
    base_url: str, headers: dict[str, str], writers: int, stop: asyncio.Event, round_name: str = ""
) -> Writes:
    """Writers posting until ``stop`` (or until the server is gone)."""
    writes = Writes()
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        sessions = [
            (await client.post("/sessions", json={"title": f"w{i}"})).json()["id"] for i in range(writers)
        ]

        async def writer(index: int) -> None:
            attempt = 0
            while not stop.is_set():
                attempt += 1
                content = f"{round_name} writer {index} message {attempt}"
                try:
                    response = await client.post(
                        f"/sessions/{sessions[index]}/messages", json={"role": "user", "content": content}
                    )
                except httpx.TransportError as exc:
                    writes.statuses[type(exc).__name__] += 1
                    return
                writes.statuses[str(response.status_code)] += 1
                if response.status_code == 201:
                    writes.acknowledged.append(content)
                else:
                    writes.last_failure = time.monotonic()
                    writes.first_failure = writes.first_failure or writes.last_failure

        await asyncio.gather(*(writer(i) for i in range(writers)))
    return writes


def verdict(acknowledged: list[str], stored: list[str]) -> str:
    doubled = sum(1 for n in Counter(stored).values() if n > 1)
    lost = len(set(acknowledged) - set(stored))
    return f"acknowledged {len(acknowledged)}, lost {lost}, doubled {doubled}"


async def postgres_restart(server: postgres.PostgresServer, workdir: Path, writers: int) -> None:
    database = postgres.unique_name("ailab_faults")
    await server.execute(f'CREATE DATABASE "{database}"')
    with run_server(
        server_env(workdir / "pg-restart", server.url(database)), log_path=workdir / "pg.log"
    ) as live:
        headers = await token(live.base_url)
        stop = asyncio.Event()
        task = asyncio.create_task(write(live.base_url, headers, writers, stop))
        await asyncio.sleep(2)  # writing at full speed
        assert server.data_dir is not None
        started = time.monotonic()
        log = str(server.data_dir.parent / "log")  # the server's output: pg_ctl's own pipes must close
        restart = ["pg_ctl", "-D", str(server.data_dir), "-m", "fast", "-w", "-l", log, "restart"]
        await asyncio.to_thread(postgres._run_as, server.run_as, restart)
        restarted = time.monotonic() - started
        await asyncio.sleep(3)  # writing again
        stop.set()
        writes = await task
        stored = await stored_messages(live.base_url, headers)
        errors = sorted(
            {line.split(":", 1)[-1].strip()[:160] for line in live.log().splitlines() if "Error" in line}
        )
    failures = {k: v for k, v in writes.statuses.items() if k != "201"}
    outage = (
        (writes.last_failure - writes.first_failure) if writes.last_failure and writes.first_failure else 0.0
    )
    print(f"PostgreSQL restart under {writers} writers (pg_ctl took {restarted:.2f}s):")
    print(
        f"  failed requests by status {failures or 'none'}, over {outage:.2f}s; then writes succeeded again"
    )
    print(f"  {verdict(writes.acknowledged, stored)}")
    for line in errors:
        print(f"  server log: {line}")


async def kill_rounds(name: str, database_url: str, workdir: Path, rounds: int, writers: int) -> None:
    env = server_env(workdir / f"kill-{name}", database_url)
    acknowledged: list[str] = []
    for number in range(rounds):
        with run_server(env, log_path=workdir / f"kill-{name}-{number}.log") as live:
            headers = await token(live.base_url)
            stop = asyncio.Event()
            task = asyncio.create_task(write(live.base_url, headers, writers, stop, f"round {number}"))
            await asyncio.sleep(1.5)
            live.process.send_signal(signal.SIGKILL)
            live.process.wait(timeout=30)
            writes = await task
            acknowledged += writes.acknowledged
    with run_server(env, log_path=workdir / f"kill-{name}-after.log") as live:
        stored = await stored_messages(live.base_url, await token(live.base_url))
    print(
        f"kill -9 mid-write on {name}, {rounds} rounds of {writers} writers: {verdict(acknowledged, stored)}"
    )


async def upstream_faults(workdir: Path) -> None:
    async with FakeOpenAI(any_key=True, models=["echo"], echo=True) as fake:
        env = server_env(
            workdir / "upstream", openai_compat_base_url=fake.base_url, provider_timeout_seconds="1"
        )
        with run_server(env, log_path=workdir / "upstream.log") as live:
            headers = await token(live.base_url)
            print("upstream faults (status, or the stream's last event before [DONE]):")
            for fault in ("stall", "reset", "garbage"):
                fake.reset()
                if fault == "stall":
                    fake.stall_after = 1
                elif fault == "reset":
                    fake.drop_after = 1
                else:
                    fake.garbage = True
                print(f"  {fault:8} {await answers(live, headers)}")
                fake.release.set()


async def answers(live: LiveServer, headers: dict[str, str]) -> str:
    chat = {"message": "hi", "model": "openai-compat/echo", "pipeline": "direct"}
    v1 = {"model": "openai-compat/echo", "messages": [{"role": "user", "content": "hi"}]}
    found = []
    async with httpx.AsyncClient(base_url=live.base_url, headers=headers, timeout=30) as client:
        for path, body in (("/chat", chat), ("/v1/chat/completions", v1)):
            for stream in (False, True):
                response = await client.post(path, json={**body, "stream": stream})
                label = f"{path}{' stream' if stream else ''}"
                if stream and response.status_code == 200:
                    # an event is its lines (``id: N`` first on /chat): keep each one's ``data:`` JSON
                    lines = (line for e in response.text.split("\n\n") for line in e.splitlines())
                    events = [line for line in lines if line.startswith("data: {")]
                    found.append(f"{label}: {events[-1][6:80] if events else 'no event'}")
                else:
                    found.append(f"{label}: {response.status_code}")
    return "; ".join(found)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=16)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ailab-faults-"))
    server = postgres._start_throwaway()  # restarted below: never the shared one
    if isinstance(server, str):
        sys.exit(f"a throwaway PostgreSQL is needed: {server}")
    try:
        await postgres_restart(server, workdir, args.writers)
        await kill_rounds("SQLite", "", workdir, args.rounds, args.writers)
        database = postgres.unique_name("ailab_kill")
        await server.execute(f'CREATE DATABASE "{database}"')
        await kill_rounds("PostgreSQL", server.url(database), workdir, args.rounds, args.writers)
        await upstream_faults(workdir)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    asyncio.run(main())
