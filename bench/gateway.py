"""Gateway benchmark: AI-Lab's /v1/chat/completions against a bare pass-through, LiteLLM's proxy and
TensorZero's gateway, and AI-Lab's own ``/chat`` (a stored turn, run as a server task) on the same upstream.

Starts, each as its own process with one worker on 127.0.0.1:

- the fast fake OpenAI upstream (``python -m tests.fakes.openai_server``);
- AI-Lab (``ai-lab serve``, auth on, an API token, ``AILAB_OPENAI_COMPAT_BASE_URL`` at the fake), and a
  second AI-Lab with ``AILAB_AUTH=off`` (no credentials: the anonymous path must cost no more);
- a bare Starlette + aiohttp pass-through (``bench/passthrough.py``);
- LiteLLM's proxy from its own venv ``bench/.venvs/litellm`` (skipped, with the reason, if missing);
- TensorZero's Rust gateway from its own venv ``bench/.venvs/tensorzero`` (``pip install
  tensorzero==2026.6.0``; skipped, with the reason, if missing), observability off, hosted in Python by
  ``bench/tensorzero_gateway.py`` and called on ``/openai/v1/chat/completions`` as
  ``tensorzero::model_name::fake``;

then loads each with the same aiohttp client, JSON and streaming, at each concurrency, for a bounded
time and number of requests, and prints req/s, p50/p99, the slowest request (where a pause of the
server, such as a full garbage collection, shows), the p50 each adds over the upstream itself and
the serving process's CPU time per request (TensorZero's includes its Python host, which is idle).
TensorZero's streams on a kept-alive connection now and then stall ~40 ms after the first chunk (likely
Nagle and delayed ACK; with ``Connection: close`` a stream takes ~1.5 ms), which sinks its stream req/s
at c=1 and its p99: read its stream p50.
``--targets`` keeps only the named ones (the upstream always runs: it is the baseline); ``--ailab-src``
runs AI-Lab from another checkout's ``src``; ``--compare-src`` runs one more AI-Lab, ``ai-lab (compare)``,
from another checkout's ``src`` beside this one (a before/after comparison in the same run);
``--rounds N`` runs the whole grid N times, the targets taking turns in an order that changes every round
(of two AI-Lab builds run one after the other, the first measured up to ~10% slower here: use an even N),
and reports each cell's median round by req/s and its spread (on a shared VM one run's figures move by
several percent with the machine);
``--ailab-workers N`` runs AI-Lab with N server processes (TensorZero's one process uses every core), its
CPU per request summed over them::

    .venv/bin/python bench/gateway.py [--duration 5] [--concurrency 1 16] [--skip-litellm] [--skip-tensorzero]
        [--targets ai-lab "ai-lab /chat"] [--ailab-src /path/to/other/checkout/src] [--ailab-workers 2]
    .venv/bin/python bench/gateway.py --targets ai-lab "ai-lab (compare)" --compare-src /tmp/before/src \
        --rounds 5 --concurrency 16 --skip-litellm --skip-tensorzero
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
LITELLM = ROOT / "bench" / ".venvs" / "litellm" / "bin" / "litellm"
TENSORZERO_PYTHON = ROOT / "bench" / ".venvs" / "tensorzero" / "bin" / "python"
ADMIN_PASSWORD = "bench-admin-password"
AILAB_CLI = str(Path(sys.executable).with_name("ai-lab"))
LITELLM_KEY = "sk-bench-master"
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    name: str
    url: str  # .../chat/completions, or AI-Lab's /chat
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    chat: bool = False  # AI-Lab's own /chat body instead of OpenAI's
    pid: int | None = None  # the serving process, whose CPU time per request is reported


def request_body(target: Target, stream: bool) -> bytes:
    """The JSON body of one request to ``target``."""
    if target.chat:
        message = MESSAGES[-1]["content"]
        return orjson.dumps(
            {
                "message": message,
                "model": target.model,
                "pipeline": "direct",
                "max_tokens": 32,
                "stream": stream,
            }
        )
    payload: dict[str, object] = {"model": target.model, "messages": MESSAGES, "max_tokens": 32}
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return orjson.dumps(payload)


@dataclass
class Cell:
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    cpu_s: float = float("nan")  # CPU seconds the serving process spent on the timed requests
    latencies: list[float] = field(default_factory=list)

    @property
    def cpu_us(self) -> float:
        """The serving process's CPU microseconds per request: steadier than req/s on a busy machine."""
        return self.cpu_s / self.ok * 1e6 if self.ok else float("nan")

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
    """Poll ``url`` until it answers below 500 (readiness of a process, not a synchronisation)."""

    async def poll() -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"{url} died:\n{log.read_text(errors='replace')[-3000:]}")
                try:
                    async with session.get(url) as r:
                        if r.status < 500:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")

    asyncio.run(poll())


def wait_file(path: Path, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> str:
    """The text of ``path`` once ``process`` has written it (a process that reports its own address)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists():
            return path.read_text().strip()
        time.sleep(0.1)
    raise RuntimeError(f"{path.name} not written:\n{log.read_text(errors='replace')[-3000:]}")


async def run_cell(
    target: Target, stream: bool, concurrency: int, duration: float, max_requests: int
) -> Cell:
    body = request_body(target, stream)
    headers = {"Content-Type": "application/json", **target.headers}
    cell = Cell()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            start = time.perf_counter()
            try:
                async with session.post(target.url, data=body, headers=headers) as r:
                    data = await r.read()
                    good = r.status == 200 and (not stream or data.rstrip().endswith(b"[DONE]"))
            except aiohttp.ClientError:
                good = False
            if good:
                cell.ok += 1
                cell.latencies.append(time.perf_counter() - start)
            else:
                cell.errors += 1

        for _ in range(min(20, max_requests)):  # warm-up: connections, caches
            await one()
        cell = Cell()
        sent = 0
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                await one()

        cpu_before = cpu_seconds(target.pid)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cell.elapsed = time.perf_counter() - start
        cell.cpu_s = cpu_seconds(target.pid) - cpu_before
    return cell


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU seconds of a serving process and of its worker processes (``--workers``)."""
    if pid is None:
        return float("nan")
    server = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [server, *server.children(recursive=True)])


class Processes:
    """The processes a benchmark started, their logs in ``workdir``; ``with Processes.temporary(prefix)``
    works in a new directory, and stops them and removes it at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[subprocess.Popen[bytes]] = []

    @classmethod
    @contextmanager
    def temporary(cls, prefix: str) -> Iterator[Processes]:
        """Processes working in a new temporary directory, stopped and the directory removed after."""
        procs = cls(Path(tempfile.mkdtemp(prefix=prefix)))
        try:
            yield procs
        finally:
            procs.stop()
            shutil.rmtree(procs.workdir, ignore_errors=True)

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.running.append(process)
        return process, log

    def stop(self) -> None:
        for process in reversed(self.running):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


def start_upstream(procs: Processes, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """The fake OpenAI upstream (``tests.fakes.openai_server``, with its command-line ``options``), ready,
    and its base URL (``.../v1``)."""
    port = free_port()
    args = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port), *options]
    process, log = procs.start("upstream", args)
    upstream = f"http://127.0.0.1:{port}/v1"
    wait_http(f"{upstream}/models", process, log)
    return process, upstream


def ailab_env(procs: Processes, port: int, upstream: str, src: str | None, **extra: str) -> dict[str, str]:
    """An AI-Lab server's environment: auth on, its own data dir, ``upstream`` as its OpenAI-compatible
    backend, and ``extra``; ``src``: run that checkout's ``src`` instead of this one's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    env.update(
        AILAB_DATA_DIR=str(procs.workdir / "ailab-data"),
        AILAB_PORT=str(port),
        AILAB_AUTH="on",
        AILAB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        AILAB_OPENAI_COMPAT_BASE_URL=upstream,
        **extra,
    )
    if src:
        env["PYTHONPATH"] = src  # before the editable install's path: that checkout's ailab runs
    return env


def api_token(env: dict[str, str]) -> str:
    """A new API token of the admin of the AI-Lab whose environment is ``env``."""
    created = subprocess.run(
        [AILAB_CLI, "tokens", "create", "bench"], env=env, capture_output=True, check=True, cwd=ROOT
    )
    return created.stdout.decode().strip()


def admin_token(port: int) -> str:
    """An access token of the admin (``/chat`` takes a login, not an API token)."""

    async def login() -> str:
        async with aiohttp.ClientSession() as session:
            body = {"username": "admin", "password": ADMIN_PASSWORD}
            async with session.post(f"http://127.0.0.1:{port}/auth/login", json=body) as r:
                return str((await r.json())["access_token"])

    return asyncio.run(login())


def serve_ailab(procs: Processes, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``ai-lab serve`` with ``env`` (its port ``AILAB_PORT``), once it is ready."""
    process, log = procs.start(name, [AILAB_CLI, "serve"], env)
    wait_http(f"http://127.0.0.1:{env['AILAB_PORT']}/health/ready", process, log)
    return process


def ailab_gateway(
    name: str, process: subprocess.Popen[bytes], port: int, headers: dict[str, str] | None = None
) -> Target:
    """AI-Lab's ``/v1/chat/completions`` on ``port`` as a target, the model behind the fake upstream."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Target(name, url, "openai-compat/gpt-4o-mini", headers or {}, pid=process.pid)


def start_all(
    procs: Processes,
    skip_litellm: bool,
    skip_tensorzero: bool,
    ailab_src: str | None = None,
    ailab_workers: int = 1,
    compare_src: str | None = None,
) -> tuple[list[Target], list[str]]:
    notes: list[str] = []
    python = sys.executable
    process, upstream = start_upstream(procs)
    targets = [Target("upstream (direct)", f"{upstream}/chat/completions", "gpt-4o-mini", pid=process.pid)]

    # AI-Lab: one worker, auth on, an API token.
    port = free_port()
    env = ailab_env(
        procs,
        port,
        upstream,
        ailab_src,
        AILAB_WORKERS=str(ailab_workers),
        AILAB_MAX_RUNS_PER_USER="1000",  # one user drives every /chat at once here
    )
    if ailab_src:
        notes.append(f"AI-Lab from {ailab_src}")
    process = serve_ailab(procs, "ailab", env)
    targets.append(ailab_gateway("ai-lab", process, port, {"Authorization": f"Bearer {api_token(env)}"}))
    admin = {"Authorization": f"Bearer {admin_token(port)}"}
    targets.append(
        Target(
            "ai-lab /chat",
            f"http://127.0.0.1:{port}/chat",
            "openai-compat/gpt-4o-mini",
            admin,
            chat=True,
            pid=process.pid,
        )
    )

    if compare_src:  # another build, the same way, beside it
        port = free_port()
        other = ailab_env(procs, port, upstream, compare_src, AILAB_WORKERS=str(ailab_workers))
        other["AILAB_DATA_DIR"] = str(procs.workdir / "ailab-compare-data")
        process = serve_ailab(procs, "ailab-compare", other)
        token = api_token(other)
        targets.append(ailab_gateway("ai-lab (compare)", process, port, {"Authorization": f"Bearer {token}"}))
        notes.append(f"ai-lab (compare): AI-Lab from {compare_src}")

    # The same, with AILAB_AUTH=off: no token at all.
    port = free_port()
    env.update(AILAB_DATA_DIR=str(procs.workdir / "ailab-off-data"), AILAB_PORT=str(port), AILAB_AUTH="off")
    process = serve_ailab(procs, "ailab-off", env)
    targets.append(ailab_gateway("ai-lab (auth off)", process, port))

    port = free_port()
    process, log = procs.start(
        "passthrough", [python, "bench/passthrough.py", "--port", str(port), "--upstream", upstream]
    )
    wait_http(f"http://127.0.0.1:{port}/", process, log)
    targets.append(
        Target(
            "bare pass-through",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            "gpt-4o-mini",
            pid=process.pid,
        )
    )

    if skip_litellm:
        notes.append("LiteLLM skipped (--skip-litellm)")
    elif not LITELLM.exists():
        notes.append(
            f"LiteLLM skipped: {LITELLM} missing "
            "(python -m venv bench/.venvs/litellm && pip install 'litellm[proxy]')"
        )
    else:
        port = free_port()
        config = procs.workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: fake-model\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            f"      api_base: {upstream}\n"
            "      api_key: sk-bench\n"
            "general_settings:\n"
            f"  master_key: {LITELLM_KEY}\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
        )
        litellm_env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
        process, log = procs.start(
            "litellm",
            [
                str(LITELLM),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            litellm_env,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health/liveliness", process, log, timeout=240)
            targets.append(
                Target(
                    "litellm proxy",
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    "fake-model",
                    {"Authorization": f"Bearer {LITELLM_KEY}"},
                )
            )
        except RuntimeError as exc:
            notes.append(f"LiteLLM failed to start: {str(exc)[:500]}")

    if skip_tensorzero:
        notes.append("TensorZero skipped (--skip-tensorzero)")
    elif not TENSORZERO_PYTHON.exists():
        notes.append(
            f"TensorZero skipped: {TENSORZERO_PYTHON} missing "
            "(python3.11 -m venv bench/.venvs/tensorzero && pip install tensorzero==2026.6.0)"
        )
    else:
        url_file = procs.workdir / "tensorzero.url"
        process, log = procs.start(
            "tensorzero",
            [
                str(TENSORZERO_PYTHON),
                "bench/tensorzero_gateway.py",
                "--upstream",
                upstream,
                "--url-file",
                str(url_file),
            ],
        )
        try:
            base_url = wait_file(url_file, process, log)
            targets.append(
                Target(
                    "tensorzero",
                    f"{base_url}/chat/completions",
                    "tensorzero::model_name::fake",
                    pid=process.pid,
                )
            )
        except RuntimeError as exc:
            notes.append(f"TensorZero failed to start: {str(exc)[:500]}")
    return targets, notes


PEERS = {
    "litellm proxy": "litellm",
    "tensorzero": "tensorzero",
    "bare pass-through": "bare",
    "ai-lab (compare)": "compare",
}


def median_cell(cells: list[Cell]) -> Cell:
    """The round with the median req/s (the lower of the two middle ones for an even count)."""
    return sorted(cells, key=lambda cell: cell.rps)[(len(cells) - 1) // 2]


def print_peers(results: dict[tuple[str, str, int], Cell], names: list[str], concurrency: list[int]) -> None:
    """AI-Lab's req/s at the top concurrency, and its added p50 at the lowest, beside each peer that ran."""
    peers = {name: short for name, short in PEERS.items() if name in names}
    if "ai-lab" not in names or not peers:
        return
    print()
    top, low = max(concurrency), min(concurrency)
    for mode in ("json", "stream"):
        ours = results[("ai-lab", mode, top)].rps
        ratios = ", ".join(
            f"{ours / results[(name, mode, top)].rps:.2f}x {short}" for name, short in peers.items()
        )
        print(f"{mode} c={top}: ai-lab = {ratios}")
    base = results[(names[0], "json", low)].pct(0.5)
    added = ", ".join(
        f"{short} {results[(name, 'json', low)].pct(0.5) - base:.2f}"
        for name, short in {"ai-lab": "ai-lab", **peers}.items()
    )
    print(f"json c={low}: p50 added over the upstream (ms): {added}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--max-requests", type=int, default=20000, help="requests per cell at most")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-tensorzero", action="store_true")
    parser.add_argument("--targets", nargs="+", help="only these targets (and the upstream)")
    parser.add_argument("--ailab-src", help="run AI-Lab from this src directory (another checkout)")
    parser.add_argument(
        "--ailab-workers", type=int, default=1, help="AI-Lab's server processes (TensorZero uses every core)"
    )
    parser.add_argument("--compare-src", help="also run AI-Lab from this src, as 'ai-lab (compare)'")
    parser.add_argument("--rounds", type=int, default=1, help="runs of the whole grid; each cell's median")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    with Processes.temporary("ailab-bench-") as procs:
        targets, notes = start_all(
            procs,
            args.skip_litellm,
            args.skip_tensorzero,
            args.ailab_src,
            args.ailab_workers,
            args.compare_src,
        )
        if args.ailab_workers > 1:
            notes.append(f"AI-Lab with {args.ailab_workers} worker processes (CPU summed over them)")
        if args.targets:
            targets = [t for i, t in enumerate(targets) if i == 0 or t.name in args.targets]
        rounds: dict[tuple[str, str, int], list[Cell]] = {}
        for round_number in range(1, args.rounds + 1):
            # The order of the peers changes every round: of two AI-Lab builds run one after the other,
            # the first measured up to ~10% slower here (the same build either side). Every other round
            # runs them backwards (over an even number of rounds each of two peers goes before the other
            # as often), and every two rounds they turn by one place.
            peers = targets[1:]
            shift = (round_number - 1) // 2 % max(1, len(peers))
            peers = peers[shift:] + peers[:shift]
            if round_number % 2 == 0:
                peers.reverse()
            order = [targets[0], *peers]
            for mode in ("json", "stream"):
                for concurrency in args.concurrency:
                    for target in order:
                        cell = asyncio.run(
                            run_cell(target, mode == "stream", concurrency, args.duration, args.max_requests)
                        )
                        rounds.setdefault((target.name, mode, concurrency), []).append(cell)
                        print(
                            f"  {round_number:>2} {target.name:20} {mode:6} c={concurrency:<3} "
                            f"{cell.rps:8.1f} req/s {cell.cpu_us:8.0f} us CPU/req",
                            flush=True,
                        )
        results = {key: median_cell(cells) for key, cells in rounds.items()}
        if args.rounds > 1:
            notes.append(
                f"each cell: the median of {args.rounds} rounds by req/s, the targets' order changed each "
                "round; spread: (fastest - slowest round) / median"
            )
        print()
        header = (
            "target",
            "mode",
            "conc",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "+p50 ms",
            "CPU us",
            "errors",
            "spread",
        )
        print("{:20} {:6} {:>4} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6}".format(*header))
        for mode in ("json", "stream"):
            for concurrency in args.concurrency:
                base = results[(targets[0].name, mode, concurrency)].pct(0.5)
                for target in targets:
                    cell = results[(target.name, mode, concurrency)]
                    added = cell.pct(0.5) - base if target is not targets[0] else 0.0
                    rates = [c.rps for c in rounds[(target.name, mode, concurrency)]]
                    spread = (max(rates) - min(rates)) / cell.rps if cell.rps else 0.0
                    print(
                        f"{target.name:20} {mode:6} {concurrency:>4} {cell.rps:9.1f} {cell.pct(0.5):8.2f} "
                        f"{cell.pct(0.99):8.2f} {cell.pct(1.0):8.2f} {added:8.2f} {cell.cpu_us:7.0f} "
                        f"{cell.errors:6d} {spread:6.0%}"
                    )
        print_peers(results, [t.name for t in targets], args.concurrency)
        for note in notes:
            print(f"note: {note}")


if __name__ == "__main__":
    main()
