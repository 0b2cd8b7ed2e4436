"""End-to-end: the web UI in real headless Chromium (Debian's ``chromium``, driven by Playwright), against a
real ``ai-lab serve`` on a free port with the embedded model, and a fake OpenAI-compatible upstream (a
process of its own, answering ``echo: <the message>``) for the rest.

One server per test process (the pages share it; each test works in sessions of its own); one browser
per test. Without
chromium or Playwright the tests are skipped with the reason (failed under ``CI=true``). Screenshots of
each page go to ``AILAB_E2E_ARTIFACTS`` (default ``.e2e-artifacts/``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import LiveServer, run_server, server_env
from tests.support.unavailable import unavailable

CHROMIUM = os.environ.get("AILAB_E2E_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("AILAB_E2E_ARTIFACTS", ".e2e-artifacts"))
ECHO_MODEL = "openai-compat/gpt-4o-mini"  # one of the fake's models; with --echo it echoes for any
UPLOAD_LIMIT = 1024 * 1024  # the server's AILAB_MAX_UPLOAD_BYTES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)  # a browser and a server process


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    """A fake OpenAI-compatible server in a process of its own (echoing the last message)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--echo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.search(r"listening on (\S+)", line)
    if match is None:
        process.kill()
        raise RuntimeError(f"the fake upstream did not start: {line}")
    yield match.group(1)
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, upstream_url: str) -> Iterator[LiveServer]:
    """``ai-lab serve`` on a fresh SQLite database, the embedded model and the fake upstream."""
    data = tmp_path_factory.mktemp("e2e")
    env = server_env(
        data / "data",
        openai_compat_base_url=upstream_url,
        openai_compat_api_key="sk-e2e",
        openai_base_url=upstream_url,  # the keys page tests an OpenAI key against the fake
        default_pipeline="direct",
        max_runs_per_user="20",
        # Long enough to stop or reload mid-answer, short enough that a loaded machine finishes it well
        # within a test's wait (the default 1,024 tokens took over a minute under CI's load).
        local_max_tokens="240",
        max_upload_bytes=str(UPLOAD_LIMIT),  # small, so that a test can go past it cheaply
    )
    with run_server(env, log_path=data / "server.log") as live:
        yield live


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, for one test: Playwright's sync API runs an event loop of its own on this
    thread while it is open, so it must be closed before the next (asyncio) test of this process."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (make install)")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no chromium at {CHROMIUM} (make test installs it as root with apt)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context on the server (desktop size); a screenshot is saved at the end."""
    context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"errors in the page: {errors}"


def sign_in(page: Any, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """Open the UI and sign in through its form."""
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Sessions").wait_for()


@contextmanager
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """An admin client of the server's API (for set-up and checks beside the browser)."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        login = client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield client
