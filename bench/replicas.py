"""Two replicas under load, one killed: throughput, latency and whether anything acknowledged is lost.

Two ``ai-lab serve`` processes share one PostgreSQL database, one master key and one Redis (a key prefix
of their own). ``--sessions`` concurrent sessions (half on each replica, each on a connection of its own)
alternate appends (``POST /sessions/{id}/messages``) and streamed runs (``POST /chat`` with ``stream:
true`` against a fake OpenAI-compatible upstream that echoes, in this process) for ``--duration``
seconds. Halfway through, replica B is killed with SIGKILL and started again (same settings, a new
port); its clients' requests in progress fail, and a client refused a connection waits until B answers
again. After the load:

- every acknowledged append (201) and the user message of every started run (200 with ``X-Run-Id``) is
  stored exactly once; every run whose stream reached ``final`` has that answer stored once;
- no run stays ``running`` (``GET /sessions/{id}/runs?status=running``; the restarted replica marks the
  runs of the killed process failed at its start, any replica within a lease of 30 s);

it prints requests, req/s, p50 and p99 per kind of request (a run: until ``[DONE]``; also until its first
``delta``), errors by kind, lost and duplicated messages and runs left running, and exits with 1 when
one of the last three is not 0, or when a start of the killed replica failed (it is tried twice). The
per-user limit of concurrent runs is raised (``--max-runs``), as every session belongs to the admin.
PostgreSQL: the one on 127.0.0.1:5432 (``AILAB_TEST_PG_DSN``), else a throwaway cluster; Redis: the one
on 127.0.0.1:6379 (``AILAB_TEST_REDIS_URL``), else a throwaway ``redis-server``::

    .venv/bin/python bench/replicas.py                              # 200 sessions, 20 s
    .venv/bin/python bench/replicas.py --sessions 50 --duration 5   # a quick try
    .venv/bin/python bench/replicas.py --keep                       # keep the servers' logs
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_server import FakeOpenAI  # noqa: E402 - the repo's own fakes
from tests.support import postgres  # noqa: E402
from tests.support.redis import ThrowawayRedis, find_or_start_redis, unique_prefix  # noqa: E402
from tests.support.server import ADMIN_PASSWORD, LiveServer, run_server, server_env  # noqa: E402

MODEL = "openai-compat/echo"
RUNNING_WAIT_S = 40.0  # a lease (30 s) and a sweep (every 5 s) at most
CHECK_CONCURRENCY = 16
RESTART_TRIES = 2
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
ONE_CONNECTION = httpx.Limits(max_connections=1, max_keepalive_connections=1)


@dataclass
class Replica:
    """One ``ai-lab serve``: started, killed and started again by the benchmark."""

    name: str
    env: dict[str, str]
    workdir: Path
    live: LiveServer | None = None
    starts: int = 0
    up: asyncio.Event = field(default_factory=asyncio.Event)  # cleared while it is killed and restarting
    gone: bool = False  # it did not start again: its clients stop
    _manager: AbstractContextManager[LiveServer] | None = None

    @property
    def base_url(self) -> str:
        assert self.live is not None
        return self.live.base_url

    @property
    def logs(self) -> list[Path]:
        return [self.workdir / f"{self.name}-{n}.log" for n in range(self.starts)]

    async def start(self) -> float:
        """Start it (in a thread: the clients and the upstream keep running); seconds it took."""
        started = time.monotonic()
        manager = run_server(self.env, log_path=self.workdir / f"{self.name}-{self.starts}.log")
        self.starts += 1
        self.live = await asyncio.to_thread(manager.__enter__)
        self._manager = manager
        self.up.set()
        return time.monotonic() - started

    async def kill(self) -> None:
        assert self.live is not None
        assert self._manager is not None
        self.up.clear()
        self.live.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.live.process.wait, 30)
        await asyncio.to_thread(self._manager.__exit__, None, None, None)
        self._manager = None

    async def stop(self) -> None:
        if self._manager is not None:
            await asyncio.to_thread(self._manager.__exit__, None, None, None)
            self._manager = None


@dataclass
class Load:
    """What the clients saw."""

    append_ms: list[float] = field(default_factory=list)
    run_ms: list[float] = field(default_factory=list)
    first_delta_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    appended: list[tuple[str, str]] = field(default_factory=list)  # (session, content) answered 201
    started: list[tuple[str, str]] = field(default_factory=list)  # (session, message) of runs begun
    finals: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # run -> session, answer, [DONE]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def append(client: httpx.AsyncClient, replica: Replica, session: str, content: str, load: Load) -> bool:
    """One append; False when the replica could not be reached."""
    started = time.perf_counter()
    try:
        response = await client.post(
            f"{replica.base_url}/sessions/{session}/messages", json={"role": "user", "content": content}
        )
    except httpx.TransportError as exc:
        load.errors[f"append: {type(exc).__name__}"] += 1
        return not isinstance(exc, httpx.ConnectError)
    if response.status_code == 201:
        load.append_ms.append((time.perf_counter() - started) * 1000)
        load.appended.append((session, content))
    else:
        load.errors[f"append: HTTP {response.status_code}"] += 1
    return True


async def stream_run(
    client: httpx.AsyncClient, replica: Replica, session: str, message: str, load: Load
) -> bool:
    """One streamed run, read to ``[DONE]``; False when the replica could not be reached."""
    body = {"message": message, "session_id": session, "model": MODEL, "pipeline": "direct", "stream": True}
    started = time.perf_counter()
    run_id = ""
    answer: str | None = None
    done = first_delta = False
    try:
        async with client.stream("POST", f"{replica.base_url}/chat", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                load.errors[f"run: HTTP {response.status_code}"] += 1
                return True
            run_id = response.headers["X-Run-Id"]
            load.started.append((session, message))
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True  # read on to the end: a response read whole leaves its connection reusable
                    continue
                event = orjson.loads(line[6:])
                kind = event.get("type")
                if kind == "delta" and not first_delta:
                    first_delta = True
                    load.first_delta_ms.append((time.perf_counter() - started) * 1000)
                elif kind == "final":
                    answer = event["response"]
                elif kind in ("error", "cancelled"):
                    load.errors[f"run: {kind} event ({str(event.get('error', ''))[:60]})"] += 1
    except httpx.TransportError as exc:
        where = "mid-stream" if run_id else "before the answer"
        load.errors[f"run: {type(exc).__name__} {where}"] += 1
        if answer is not None:
            load.finals[run_id] = (session, answer, False)
        return not isinstance(exc, httpx.ConnectError)
    if answer is not None:
        load.finals[run_id] = (session, answer, done)
    if done:
        load.run_ms.append((time.perf_counter() - started) * 1000)
    else:
        load.errors["run: stream ended without [DONE]"] += 1
    return True


async def session_loop(
    headers: dict[str, str], replica: Replica, index: int, session: str, deadline: float, load: Load
) -> None:
    """Alternate appends and runs on one session until ``deadline``, on a connection of its own (one
    pool of hundreds of connections costs httpx more CPU than the requests themselves)."""
    tag = uuid.uuid4().hex[:8]
    number = 0
    async with httpx.AsyncClient(headers=headers, timeout=TIMEOUT, limits=ONE_CONNECTION) as client:
        while time.monotonic() < deadline:
            number += 1
            if (number + index) % 2:
                reached = await append(client, replica, session, f"s{index} append {number} {tag}", load)
            else:
                reached = await stream_run(client, replica, session, f"s{index} run {number} {tag}", load)
            if not reached:
                await replica.up.wait()  # refused: the replica is down, until its restart
                if replica.gone:
                    return


async def loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late this process's event loop wakes up (ms): the clients' and the upstream's own queueing."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.05)  # a probe: how much later than asked the loop comes back
        lags.append((time.perf_counter() - asked - 0.05) * 1000)


async def pages(client: httpx.AsyncClient, base_url: str, session: str) -> list[dict[str, Any]]:
    """Every message of a session, page by page."""
    found: list[dict[str, Any]] = []
    after: int | None = -1
    while after is not None:
        response = await client.get(f"{base_url}/sessions/{session}/messages", params={"after": after})
        response.raise_for_status()
        page = response.json()
        found += page["items"]
        after = page["next_after"]
    return found


async def gather_limited(calls: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def running_runs(client: httpx.AsyncClient, base_url: str, sessions: list[str]) -> int:
    async def count(session: str) -> int:
        response = await client.get(f"{base_url}/sessions/{session}/runs", params={"status": "running"})
        response.raise_for_status()
        return len(response.json()["items"])

    return sum(await gather_limited([count(s) for s in sessions]))


async def run_statuses(client: httpx.AsyncClient, base_url: str, sessions: list[str]) -> Counter[str]:
    async def statuses(session: str) -> list[str]:
        response = await client.get(f"{base_url}/sessions/{session}/runs", params={"limit": 200})
        response.raise_for_status()
        return [run["status"] for run in response.json()["items"]]

    return Counter(s for found in await gather_limited([statuses(s) for s in sessions]) for s in found)


def row(label: str, count: int, seconds: float, latencies: list[float]) -> str:
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return f"  {label:<26}{count:>9}{count / seconds:>10.1f}{p50:>10.1f}{p99:>10.1f}"


def log_excerpts(replicas: list[Replica], limit: int = 12) -> list[str]:
    """Distinct WARNING, ERROR and CRITICAL lines of the servers' logs, and the last line of each
    traceback (``SomeError: ...``), with how often each came."""
    found: Counter[str] = Counter()
    for replica in replicas:
        for path in replica.logs:
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                level = line.split()[2] if len(line.split()) > 2 else ""
                if level in ("WARNING", "ERROR", "CRITICAL"):
                    found[f"{path.name}: {line.split(' ', 2)[-1][:200]}"] += 1
                elif line[:1].isalpha() and line.split(":")[0].endswith(("Error", "Exception")):
                    found[f"{path.name}: {line[:200]}"] += 1
    lines = [f"{text} (x{n})" if n > 1 else text for text, n in found.items()]
    if len(lines) > limit:
        lines[limit:] = [f"... and {len(lines) - limit} more distinct lines"]
    return lines


async def bench(args: argparse.Namespace, database_url: str, redis_url: str, workdir: Path) -> int:
    prefix = unique_prefix()
    # One master key for both: they share the database (each gets its own data dir below).
    shared = server_env(
        workdir,
        database_url,
        redis_url=redis_url,
        redis_prefix=prefix,
        max_runs_per_user=str(args.max_runs),
        openai_compat_api_key="sk-bench-replicas",
    )
    # The upstream's streams to the killed replica break; aiohttp logs each with a traceback.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    async with FakeOpenAI(any_key=True, models=["echo"], echo=True, record=False) as upstream:
        shared["AILAB_OPENAI_COMPAT_BASE_URL"] = upstream.base_url
        replicas = [
            Replica(name, {**shared, "AILAB_DATA_DIR": str(workdir / name)}, workdir) for name in ("A", "B")
        ]
        try:
            for replica in replicas:  # one after the other: the first one migrates the database
                await replica.start()
            return await measure(args, replicas)
        finally:
            for replica in replicas:
                await replica.stop()
            excerpts = log_excerpts(replicas)
            print("server log (warnings, errors):" if excerpts else "server log: no warning, no error")
            for line in excerpts:
                print(f"  {line}")
            _clean_redis(redis_url, prefix)


async def restart(replica: Replica, tries: int = RESTART_TRIES) -> tuple[float, list[str]]:
    """Start a killed replica again: seconds until it answered, and why earlier tries failed."""
    began = time.monotonic()
    failures: list[str] = []
    for _ in range(tries):
        try:
            await replica.start()
            return time.monotonic() - began, failures
        except RuntimeError as exc:  # it exited at start: its log says why
            failures.append(f"{replica.name}-{replica.starts - 1}.log: {str(exc).splitlines()[0]}")
    replica.gone = True
    replica.up.set()
    return math.nan, failures


async def measure(args: argparse.Namespace, replicas: list[Replica]) -> int:
    a, b = replicas
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:  # set-up and checks
        login = await client.post(
            f"{a.base_url}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        login.raise_for_status()
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"  # valid on both
        sessions: list[str] = []
        for index in range(args.sessions):
            replica = replicas[index % 2]
            created = await client.post(f"{replica.base_url}/sessions", json={"title": f"s{index}"})
            created.raise_for_status()
            sessions.append(created.json()["id"])

        load = Load()
        lags: list[float] = []
        stop_probe = asyncio.Event()
        probe = asyncio.create_task(loop_lag(lags, stop_probe))
        began = time.monotonic()
        deadline = began + args.duration
        clients = [
            asyncio.create_task(session_loop(dict(client.headers), replicas[i % 2], i, s, deadline, load))
            for i, s in enumerate(sessions)
        ]
        await asyncio.sleep(args.duration * args.kill_at)
        acknowledged_before = len(load.appended) + len(load.started)
        await b.kill()
        killed_at = time.monotonic() - began
        restart_s, failed_starts = await restart(b)
        await asyncio.gather(*clients)
        elapsed = time.monotonic() - began
        stop_probe.set()
        await probe

        # Runs left running: the restart failed the killed process's runs; a lease ends within 30 s.
        waited_from = time.monotonic()
        left = await running_runs(client, a.base_url, sessions)
        while left and time.monotonic() - waited_from < RUNNING_WAIT_S:
            await asyncio.sleep(1.0)  # polling the sweep's outcome, as a client would
            left = await running_runs(client, a.base_url, sessions)
        running_wait = time.monotonic() - waited_from
        statuses = await run_statuses(client, (a if b.gone else b).base_url, sessions)
        stored = await gather_limited([pages(client, a.base_url, s) for s in sessions])

        by_content: Counter[tuple[str, str, str]] = Counter()
        for session, messages in zip(sessions, stored, strict=True):
            for message in messages:
                if message["content"]:  # an interrupted run's answer is empty, one per such run
                    by_content[(session, message["role"], message["content"])] += 1
        duplicated = sum(n - 1 for n in by_content.values() if n > 1)
        lost_appends = sum(1 for s, c in load.appended if not by_content[(s, "user", c)])
        lost_prompts = sum(1 for s, m in load.started if not by_content[(s, "user", m)])
        lost_answers = {
            run_id: done
            for run_id, (s, answer, done) in load.finals.items()
            if not by_content[(s, "assistant", answer)]
        }
        lost = lost_appends + lost_prompts + len(lost_answers)
        lost_runs: Counter[str] = Counter()  # how the runs whose answer is missing were stored
        for run_id in lost_answers:
            found = (await client.get(f"{a.base_url}/runs/{run_id}")).json()
            lost_runs[f"{found.get('status')}: {found.get('error')}"] += 1

    print(
        f"{args.sessions} sessions on 2 replicas (PostgreSQL, Redis), {args.duration:.0f} s of load "
        f"({elapsed:.1f} s until the last request ended)"
    )
    again = "did not start again" if b.gone else f"answering again {restart_s:.1f} s later"
    print(
        f"replica B killed (SIGKILL) at {killed_at:.1f} s, after {acknowledged_before} acknowledged "
        f"appends and runs; {again}"
    )
    for failure in failed_starts:
        print(f"  its restart failed: {failure} (see the log excerpts below)")
    print(f"  {'':<26}{'requests':>9}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(row("appends (201)", len(load.append_ms), elapsed, load.append_ms))
    print(row("runs to [DONE]", len(load.run_ms), elapsed, load.run_ms))
    print(row("runs to first delta", len(load.first_delta_ms), elapsed, load.first_delta_ms))
    print(
        f"  event loop lag of this process (clients, upstream): p50 {percentile(lags, 0.5):.1f} ms, "
        f"p99 {percentile(lags, 0.99):.1f} ms"
    )
    print(f"errors: {sum(load.errors.values()) or 'none'}")
    for kind, count in sorted(load.errors.items(), key=lambda item: -item[1]):
        print(f"  {count:>7}  {kind}")
    print(f"runs begun {len(load.started)}, reached final {len(load.finals)}; stored: {dict(statuses)}")
    print(
        f"lost: {lost} (appends {lost_appends}, run prompts {lost_prompts}, answers after final "
        f"{len(lost_answers)}, of which {sum(lost_answers.values())} after [DONE])"
    )
    for kind, count in lost_runs.items():
        print(f"  {count:>7}  answer seen in the stream (final), run stored as {kind}")
    print(f"duplicated: {duplicated}")
    print(f"runs left running: {left} (polled for {running_wait:.1f} s after the load ended)")
    return 1 if lost or duplicated or left or failed_starts else 0


def _clean_redis(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=200, help="concurrent sessions (default 200)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument(
        "--kill-at", type=float, default=0.5, help="when to kill replica B, a fraction of --duration"
    )
    parser.add_argument(
        "--max-runs", type=int, default=1000, help="AILAB_MAX_RUNS_PER_USER of the replicas (default 1000)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' data and logs")
    args = parser.parse_args()

    server = postgres.find_or_start()
    if isinstance(server, str):
        sys.exit(f"PostgreSQL is needed: {server}")
    found_redis = find_or_start_redis()
    if found_redis is None:
        server.stop()
        sys.exit("Redis is needed: nothing answers on 127.0.0.1:6379 and redis-server is not on PATH")
    redis_url = found_redis if isinstance(found_redis, str) else found_redis.url
    workdir = Path(tempfile.mkdtemp(prefix="ailab-replicas-"))
    database = postgres.unique_name("ailab_replicas")
    try:
        asyncio.run(server.execute(f'CREATE DATABASE "{database}"'))
        code = _run(bench(args, server.url(database), redis_url, workdir))
    finally:
        if server.data_dir is None:
            asyncio.run(server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        server.stop()
        if isinstance(found_redis, ThrowawayRedis):
            found_redis.stop()
        if args.keep:
            print(f"logs and data in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(code)


def _run(coroutine: Any) -> int:
    try:
        import uvloop  # the servers' event loop too
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
