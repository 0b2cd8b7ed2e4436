"""Instructions per gateway request, counted by valgrind's callgrind: a figure that does not move with the
machine's load or clock, where ``bench/gateway.py``'s times do (on a shared VM the same build has taken
from 15% to 2x as long from one run to the next, and a before/after change of a few percent is lost).

Each gateway runs under ``valgrind --tool=callgrind --instr-atstart=no`` (so it starts at nearly full
speed); once it is up and warmed (``--warmup`` requests), counting is switched on with
``callgrind_control``, ``--requests`` requests are sent at ``--concurrency`` from an aiohttp client outside
valgrind, counting is switched off and the counts dumped. The figure is user-space instructions of the
serving process, every thread, less what it runs idle for as long (its timers), divided by the requests:
the same build gives the same count within ~1-3% (the timers' share moves a little). The kernel's share
(syscalls) is not in it, nor the CPU's stalls (cache misses, mispredictions): instructions are not time,
but a change that removes work shows here whatever the machine is doing. Work that load brings every few
seconds (not every request) weighs ~50x too much here, as the timers would: when such work shows, it is
worth a look (it found the credential caches' reload stampede), but its real share is ~50x smaller.
Code that picks its SIMD path by the CPU runs another one under valgrind, which offers fewer extensions:
orjson parsing a 364-byte answer counts ~14,000 instructions here, about twice what its 0.76 us natively
suggests (the VM this was measured on reports no instruction counter to check); confirm a change in such
code with ``bench/gateway.py``.

Targets (each optional, all on the same fake upstream, which runs outside valgrind): ``ai-lab`` (auth on,
an API token, as in ``bench/gateway.py``), ``bare`` (``bench/passthrough.py``: uvicorn + Starlette +
aiohttp, nothing else) and ``tensorzero`` (its Rust gateway, from ``bench/.venvs/tensorzero``)::

    .venv/bin/python bench/instructions.py [--targets ai-lab bare tensorzero] [--requests 2000]
        [--concurrency 16] [--ailab-src /path/to/other/checkout/src] [--paced-words 200]

``--paced-words N``: the upstream answers N words, a stream each word in a write of its own (as a model
streams its tokens; otherwise a whole stream is one write): what each streamed chunk costs shows.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from gateway import (
    AILAB_CLI,
    TENSORZERO_PYTHON,
    Processes,
    Target,
    ailab_env,
    api_token,
    free_port,
    request_body,
    start_upstream,
    wait_file,
    wait_http,
)

STARTUP_TIMEOUT_S = 600.0  # imports run uninstrumented, but valgrind still translates every instruction
# Timers run whether requests come or not (AI-Lab's system sampler, flushes): under valgrind a request
# takes ~50x as long, so their share per request would be ~50x too. Their rate is measured over this
# long with no request, and subtracted.
IDLE_S = 5.0


@dataclass(kw_only=True)
class Served(Target):
    """A target running under callgrind."""

    out: Path  # callgrind's output file


def callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


async def load(target: Served, stream: bool, requests: int, concurrency: int) -> int:
    """Send ``requests`` requests; the number that failed."""
    data = request_body(target, stream)
    headers = {"Content-Type": "application/json", **target.headers}
    left, failed = requests, 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal left, failed
            while left > 0:
                left -= 1
                async with session.post(target.url, data=data, headers=headers) as response:
                    answer = await response.read()
                    if response.status != 200 or (stream and not answer.rstrip().endswith(b"[DONE]")):
                        failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


def instructions(out: Path) -> int:
    """The instructions of the latest dump of ``out`` (callgrind numbers each dump ``out.N``)."""
    dumps = sorted(out.parent.glob(f"{out.name}.*"), key=lambda p: int(p.suffix[1:]))
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("totals:", "summary:")) and int(line.split()[1]) > 0:
            return int(line.split()[1])
    raise RuntimeError(f"no counts in {dumps[-1]}")


def counted(pid: int, out: Path, work: Callable[[], None]) -> tuple[int, float]:
    """The instructions ``pid`` ran while ``work()`` ran, and the seconds it took."""
    control(pid, "--zero")
    control(pid, "--instr=on")
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    control(pid, "--instr=off")
    control(pid, "--dump")
    return instructions(out), elapsed


def measure(target: Served, stream: bool, args: argparse.Namespace) -> float:
    """Instructions per request of ``target`` (JSON or streamed), less what it runs when idle."""
    if asyncio.run(load(target, stream, args.warmup, args.concurrency)):
        raise RuntimeError(f"{target.name}: warm-up requests failed")
    assert target.pid is not None
    idle, idle_s = counted(target.pid, target.out, lambda: time.sleep(IDLE_S))
    failed = 0

    def send() -> None:
        nonlocal failed
        failed = asyncio.run(load(target, stream, args.requests, args.concurrency))

    busy, busy_s = counted(target.pid, target.out, send)
    if failed:
        raise RuntimeError(f"{target.name}: {failed} of {args.requests} requests failed")
    return (busy - idle / idle_s * busy_s) / args.requests


def start_ailab(procs: Processes, upstream: str, src: str | None) -> Served:
    port = free_port()
    # The history keeps up to 100 rows a second per route and model, sampling past that; under valgrind
    # the server answers ~50x fewer requests a second, so 2 keeps the same share of them as rows (at 100
    # a second every request would be one, as on an idle server, not a loaded one).
    env = ailab_env(procs, port, upstream, src, AILAB_METRICS_SAMPLES_PER_SECOND="2")
    out = procs.workdir / "ai-lab.callgrind"
    process, log = procs.start("ai-lab", [*callgrind(out), sys.executable, AILAB_CLI, "serve"], env)
    wait_http(f"http://127.0.0.1:{port}/health/ready", process, log, timeout=STARTUP_TIMEOUT_S)
    return Served(
        "ai-lab",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        "openai-compat/gpt-4o-mini",
        {"Authorization": f"Bearer {api_token(env)}"},
        pid=process.pid,
        out=out,
    )


def start_bare(procs: Processes, upstream: str) -> Served:
    port = free_port()
    out = procs.workdir / "bare.callgrind"
    args = [sys.executable, "bench/passthrough.py", "--port", str(port), "--upstream", upstream]
    process, log = procs.start("bare", [*callgrind(out), *args])
    wait_http(f"http://127.0.0.1:{port}/", process, log, timeout=STARTUP_TIMEOUT_S)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Served("bare", url, "gpt-4o-mini", pid=process.pid, out=out)


def start_tensorzero(procs: Processes, upstream: str) -> Served:
    if not TENSORZERO_PYTHON.exists():
        raise RuntimeError(f"{TENSORZERO_PYTHON} missing (pip install tensorzero==2026.6.0 in that venv)")
    url_file = procs.workdir / "tensorzero.url"
    out = procs.workdir / "tensorzero.callgrind"
    args = [str(TENSORZERO_PYTHON), "bench/tensorzero_gateway.py", "--upstream", upstream]
    process, log = procs.start("tensorzero", [*callgrind(out), *args, "--url-file", str(url_file)])
    base = wait_file(url_file, process, log, timeout=STARTUP_TIMEOUT_S)
    url = f"{base}/chat/completions"
    return Served("tensorzero", url, "tensorzero::model_name::fake", pid=process.pid, out=out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", nargs="+", default=["ai-lab", "bare", "tensorzero"])
    parser.add_argument("--requests", type=int, default=2000, help="counted requests per cell")
    parser.add_argument("--warmup", type=int, default=300, help="uncounted requests first")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ailab-src", help="run AI-Lab from this src directory (another checkout)")
    parser.add_argument(
        "--paced-words",
        type=int,
        help="answers of this many words, each streamed in a write of its own (as a model streams tokens)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")

    with Processes.temporary("ailab-instructions-") as procs:
        paced = ["--paced", "--reply", " ".join(["word"] * args.paced_words)] if args.paced_words else []
        _, upstream = start_upstream(procs, *paced)
        starters = {
            "ai-lab": lambda: start_ailab(procs, upstream, args.ailab_src),
            "bare": lambda: start_bare(procs, upstream),
            "tensorzero": lambda: start_tensorzero(procs, upstream),
        }
        results: dict[str, dict[str, float]] = {}
        for name in args.targets:
            target = starters[name]()
            results[name] = {mode: measure(target, mode == "stream", args) for mode in ("json", "stream")}
            print(
                f"  {name:12} json {results[name]['json'] / 1000:8.1f}k"
                f"  stream {results[name]['stream'] / 1000:8.1f}k instructions per request",
                flush=True,
            )
        answers = f", {args.paced_words}-word answers, paced" if args.paced_words else ""
        setting = f"c={args.concurrency}, {args.requests} requests per cell{answers}"
        print(f"\ninstructions per request, {setting}:")
        print(f"{'target':12} {'json':>10} {'stream':>10}")
        for name, cells in results.items():
            print(f"{name:12} {cells['json'] / 1000:9.1f}k {cells['stream'] / 1000:9.1f}k")
        for peer in ("bare", "tensorzero"):
            if "ai-lab" in results and peer in results:
                ratios = [f"{m} {results['ai-lab'][m] / results[peer][m]:.2f}x" for m in ("json", "stream")]
                print(f"ai-lab / {peer}: {', '.join(ratios)}")


if __name__ == "__main__":
    main()
