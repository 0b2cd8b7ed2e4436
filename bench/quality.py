"""Answer quality of the default brain: questions with checkable answers through ``/chat``.

Each question goes to ``POST /chat`` (JSON, a fresh session each time) once per pipeline (``direct``
and the default agent pipeline) and per model (the embedded one unless ``--model`` names others, e.g.
``openai/gpt-4o-mini`` with its key in ``AILAB_OPENAI_API_KEY``). The answer is checked by a rule of
the question's own (a word that must appear, code that must define a function...). For each
model and pipeline it prints right/total, the median and the longest time to an answer, and the share of
routing steps that the agents decided themselves (read from ``GET /sessions/{id}/agent-states``: a step
taken by the route's default, after an unreadable decision, does not count)::

    .venv/bin/python bench/quality.py [--model local/...] [--pipeline direct] [--timeout 300] [-v]

It starts its own server on a fresh data dir (the environment's ``AILAB_*`` provider settings are
passed on, so configured remote providers can be measured too), or measures a running one with
``--url`` and ``--token``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORD = "bench-admin-password"


def mentions(*words: str) -> Callable[[str], bool]:
    """The answer contains one of ``words`` as a whole word (any case)."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    return lambda text: pattern.search(text) is not None


def defines_square(text: str) -> bool:
    """Python code that defines ``square`` and, run, squares a number."""
    code = "\n".join(re.findall(r"```(?:python|py)?\n(.*?)```", text, re.DOTALL)) or text
    if not re.search(r"def\s+square\s*\(", code):
        return False
    try:
        run = subprocess.run(
            [sys.executable, "-I", "-c", code + "\nprint(square(7))"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return run.stdout.strip().endswith("49")


def haiku_about_rain(text: str) -> bool:
    """Short, about rain, and not a loop of the same words."""
    words = re.findall(r"[a-z']+", text.lower())
    if not words or len(words) > 60 or not any(w.startswith("rain") for w in words):
        return False
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return all(trigrams.count(t) <= 2 for t in set(trigrams))


@dataclass(frozen=True)
class Question:
    text: str
    check: Callable[[str], bool]


QUESTIONS = (
    Question("What is the capital of France?", mentions("Paris")),
    Question("What is the capital of Japan?", mentions("Tokyo")),
    Question("What is 2 + 2?", mentions("4", "four")),
    Question("Which planet is the largest in our solar system?", mentions("Jupiter")),
    Question("Who wrote Romeo and Juliet?", mentions("Shakespeare")),
    Question("What is the chemical symbol for gold?", lambda t: re.search(r"\bAu\b", t) is not None),
    Question("How many days are in a week?", mentions("7", "seven")),
    Question("At what temperature in degrees Celsius does water boil at sea level?", mentions("100")),
    Question('Translate "thank you" into French.', mentions("merci")),
    Question("What color is the sky on a clear day?", mentions("blue")),
    Question("Write a haiku about rain.", haiku_about_rain),
    Question("Write a Python function named square that returns the square of a number.", defines_square),
)


@dataclass
class Outcome:
    question: str
    right: bool
    seconds: float
    answer: str
    routing_steps: int = 0
    decided: int = 0
    path: str = ""
    error: str | None = None


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def line(self, label: str) -> str:
        right = sum(o.right for o in self.outcomes)
        times = [o.seconds for o in self.outcomes]
        routing = sum(o.routing_steps for o in self.outcomes)
        decided = sum(o.decided for o in self.outcomes)
        share = f"{decided}/{routing} ({decided / routing:.0%})" if routing else "-"
        failed = sum(o.error is not None for o in self.outcomes)
        return (
            f"{label:46} {right:>2}/{len(self.outcomes):<2} {statistics.median(times):9.2f} "
            f"{max(times):9.2f}  {share:>14}  {failed:>6}"
        )


def routing_counts(states: list[dict[str, object]]) -> tuple[int, int]:
    """(routing steps, decided by the agent) of one run's agent states."""
    steps = decided = 0
    for state in states:
        routed_by = state.get("routed_by")
        if routed_by is None:  # servers before ``routed_by``: read the note in the step's trace
            trace = str(state.get("thought_process") or "")
            if state.get("decision") is None:
                continue
            routed_by = "default" if "default route" in trace else "agent"
            if state.get("agent") != "CEO":  # the built-in pipeline's only router
                routed_by = "fixed"
        if routed_by == "fixed":
            continue
        steps += 1
        decided += routed_by == "agent"
    return steps, decided


def ask(
    client: httpx.Client, question: Question, model: str | None, pipeline: str, timeout: float
) -> Outcome:
    body: dict[str, object] = {"message": question.text, "pipeline": pipeline}
    if model:
        body["model"] = model
    start = time.perf_counter()
    try:
        response = client.post("/chat", json=body, timeout=timeout)
    except httpx.TimeoutException:
        return Outcome(question.text, False, time.perf_counter() - start, "", error="client timeout")
    seconds = time.perf_counter() - start
    data = response.json()
    answer = str(data.get("response") or "")
    outcome = Outcome(question.text, question.check(answer), seconds, answer)
    if response.status_code != 200 or data.get("status") != "success":
        outcome.error = f"{response.status_code}: {data.get('error') or data.get('detail')}"
    session_id = data.get("session_id")
    if session_id and pipeline != "direct":
        states = client.get(f"/sessions/{session_id}/agent-states").json()["items"]
        outcome.routing_steps, outcome.decided = routing_counts(states)
        outcome.path = " > ".join(f"{s['agent']}({s.get('completion_tokens') or 0})" for s in states)
    return outcome


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def own_server() -> Iterator[tuple[str, str]]:
    """A server on a fresh data dir: (base URL, access token)."""
    workdir = Path(tempfile.mkdtemp(prefix="ailab-bench-quality-"))
    port = free_port()
    env = dict(os.environ)
    env.update(AILAB_DATA_DIR=str(workdir / "data"), AILAB_PORT=str(port), AILAB_ADMIN_PASSWORD=PASSWORD)
    env.pop("AILAB_DATABASE_URL", None)
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed below, after the server
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("ai-lab")), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError((workdir / "server.log").read_text())
            time.sleep(0.2)
        login = httpx.post(f"{base}/auth/login", json={"username": "admin", "password": PASSWORD})
        yield base, login.json()["access_token"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            print("the server did not stop within 60 s of SIGTERM; killed", file=sys.stderr)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run(base: str, token: str, args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers) as client:
        default_pipeline = client.get("/").json().get("default_pipeline") or "agents"
        pipelines = args.pipeline or ["direct", default_pipeline]
        models = args.model or [None]
        client.post("/chat", json={"message": "Hi", "pipeline": "direct", "max_tokens": 4}, timeout=120)
        print(
            f"{'model / pipeline':46} {'right':>5} {'median s':>9} {'max s':>9}  {'routed by agent':>14}  "
            f"{'errors':>6}"
        )
        for model in models:
            for pipeline in pipelines:
                tally = Tally()
                for question in QUESTIONS:
                    outcome = ask(client, question, model, pipeline, args.timeout)
                    tally.outcomes.append(outcome)
                    if args.verbose:
                        mark = "ok " if outcome.right else "BAD"
                        text = " ".join(outcome.answer.split())[:150]
                        extra = f" [{outcome.error}]" if outcome.error else ""
                        print(f"  {mark} {outcome.seconds:6.1f}s {question.text[:40]!r}: {text!r}{extra}")
                        if outcome.path:
                            print(f"         {outcome.path}")
                print(tally.line(f"{model or 'default model'} / {pipeline}"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", help="a model id (repeatable); default: the server's")
    parser.add_argument(
        "--pipeline", action="append", help="a pipeline (repeatable); default: direct and agents"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="client timeout per question, seconds")
    parser.add_argument("--url", help="a running server instead of our own")
    parser.add_argument("--token", help="its access token (with --url)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every answer")
    args = parser.parse_args()
    if args.url:
        if not args.token:
            sys.exit("--url needs --token")
        run(args.url.rstrip("/"), args.token, args)
        return
    with own_server() as (base, token):
        run(base, token, args)


if __name__ == "__main__":
    main()
