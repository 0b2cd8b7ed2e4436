"""Property-based fuzzing of every route, from ``/openapi.json`` (schemathesis), against a real server,
with every check on: whatever the input, no answer is a 5xx; every status, content type and body is one
the document declares; what the schema allows is accepted and what it forbids is refused.

The server is a real ``ai-lab serve`` on its own data dir; its default model is a fake upstream on this
machine and every remote backend points at a closed port, so nothing leaves it and nothing is slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData

from tests.conftest import ADMIN_PASSWORD
from tests.fakes.openai_server import FakeOpenAI
from tests.support.postgres import free_port
from tests.support.server import run_server

pytestmark = pytest.mark.slow  # a server process
EXAMPLES_PER_OPERATION = 25
# A pipeline's graph rules (its entry and every target are its agents, each default is one of its targets,
# 'end' is reachable, its agents exist) are beyond JSON Schema; the operations state them, and refuse a
# schema-valid body that breaks them with 422. That answer is right there, and only there.
# Likewise whether a message fits the chosen model's context window: /chat refuses one that does not; a
# key's format, and whether a service needs one, are its plugin's; the benchmark's model count limits the
# models of its query and of its body together. An upload's real type is read from its bytes (415 for
# one not accepted), and an empty or corrupt one is 422: no schema describes a file's content. A model
# alias must name providers this server runs, no provider's name, and each deployment once.
BEYOND_SCHEMA = {
    ("POST", "/pipelines"): {422},
    ("PUT", "/pipelines/{name}"): {422},
    ("POST", "/chat"): {422},
    ("POST", "/api-keys"): {422},
    ("POST", "/benchmark/llm"): {422},
    ("POST", "/files"): {415, 422},
    ("PUT", "/models/aliases/{name}"): {422},
}
# uvicorn's HTTP parser answers a request it cannot parse (a negative case may build a request line that is
# not HTTP) before any route sees it, in plain text: that answer belongs to the protocol, not to the document.
UNPARSABLE = (400, "Invalid HTTP request received.")
REMOTES = ("OPENAI", "ANTHROPIC", "GEMINI", "AZURE", "COHERE", "HUGGINGFACE", "OLLAMA")


class Upstream:
    """The fake OpenAI upstream, run on its own event loop in a thread for the module's server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.fake = FakeOpenAI(any_key=True, models=[], echo=True, record=False)

    def __enter__(self) -> str:
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.fake.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(30)
        return self.fake.base_url

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    data = tmp_path_factory.mktemp("fuzz")
    closed = f"http://127.0.0.1:{free_port()}"
    with Upstream() as upstream:
        env = {
            "AILAB_DATA_DIR": str(data / "data"),
            "AILAB_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AILAB_MASTER_KEY": Fernet.generate_key().decode(),
            "AILAB_OPENAI_COMPAT_BASE_URL": upstream,
            "AILAB_DEFAULT_MODEL": "openai-compat/echo",
            "AILAB_PROVIDER_TIMEOUT_SECONDS": "2",
            # Thousands of wrong passwords from one address: the throttle would hold each of them a second
            # (tests/auth test it); here they only need their answers checked against the document.
            "AILAB_LOGIN_MAX_FAILURES": "100000",
            **{f"AILAB_{name}_BASE_URL": closed for name in REMOTES},
        }
        with run_server(env, log_path=Path(data) / "server.log") as server:
            login = httpx.post(
                f"{server.base_url}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            yield server.base_url, {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert "Traceback" not in server.log()


def test_every_answer_conforms_to_the_document(live: tuple[str, dict[str, str]]) -> None:
    base_url, auth = live
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema.config.update(headers=auth)  # signed in as admin; negative cases then leave the header alone
    # 413: a body over AILAB_MAX_BODY_BYTES is refused whatever it holds (a limit of the server, like 429).
    schema.config.checks.negative_data_rejection.expected_statuses.append("413")
    schema.config.checks.positive_data_acceptance.expected_statuses.append("413")
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,  # the same inputs every run: reproducible, steady in time
                database=None,
            )
            def call(case: schemathesis.Case) -> None:
                nonlocal tried
                tried += 1
                response = case.call(base_url=base_url, timeout=30)
                if (response.status_code, response.text) == UNPARSABLE:
                    return
                try:
                    case.validate_response(response, transport_kwargs={"base_url": base_url})
                except FailureGroup as failed:  # collected: every operation is tried, then all are shown
                    beyond = response.status_code in BEYOND_SCHEMA.get((case.method, case.path), set())
                    if beyond and all(isinstance(e, RejectedPositiveData) for e in failed.exceptions):
                        return
                    found = " | ".join(line.strip() for line in str(failed).splitlines()[:14] if line.strip())
                    kind = case.meta.generation.mode.name if case.meta else "?"
                    failures.append(f"{case.method} {case.formatted_path} ({kind}): {found}"[:700])

            with contextlib.suppress(Unsatisfiable):  # no negative input exists for a route without any
                call()
    assert tried > 500  # every operation, both ways
    assert failures == [], f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:40])
