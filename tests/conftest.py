"""Fixtures: fresh databases (SQLite and PostgreSQL), the app with a logged-in client, live servers.

- ``database_url``: a fresh, migrated SQLite file for the test, the built-in agents stored as a first
  start stores them; ``unstarted_database_url``: one no server has started on yet.
- ``any_database_url``: the same, once on SQLite and once on PostgreSQL (skipped, with the reason
  printed, only when no PostgreSQL can be reached or started; failed instead under ``CI=true``).
- ``settings`` / ``make_settings``: Settings on a fresh data dir, auth on, a fixed admin password.
- ``app_client`` (context factory) and ``client``: an httpx client on the ASGI app, as admin.
- ``cheap_password_hashing`` (automatic): argon2id with small parameters in this process.
- ``fast_lane``: whether that app serves its hot routes through the fast lane (production's way);
  tests/gateway and tests/chat run their tests both ways (ids ``fast-lane`` and ``routed``).
- ``upstream`` and ``upstream_client``: a recording OpenAI-compatible upstream, and the app (SQLite)
  with ``openai-compat`` pointing at it.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet

from ailab.app import create_app
from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.migrate import upgrade
from ailab.providers.registry import ProviderRegistry
from ailab.services.auth import accounts
from ailab.services.auth.accounts import Principal
from ailab.services.chat.agents.catalog import AgentCatalog
from ailab.services.container import Services
from tests.fakes.openai_server import FakeOpenAI
from tests.support import postgres
from tests.support import redis as redis_support
from tests.support.provider_settings import configure, fold
from tests.support.server import (
    ADMIN_PASSWORD,  # re-exported: the tests import it from here
    LOCAL_THREADS,
)
from tests.support.unavailable import unavailable


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id with small parameters in the test processes: the same code and hash format, but every
    app a test starts signs its admin in, and the production cost (~0.1 s a hash) made up a third of the
    quick suite's time. Servers started as processes, and tests/auth/test_passwords.py, keep the real cost."""
    real = accounts.PASSWORD_HASHER
    accounts.PASSWORD_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    accounts.PASSWORD_HASHER = real


async def _seed_agents(url: str, data_dir: Path) -> None:
    """Store the built-in agents and pipelines, as a server's first start does (``data_dir`` holds no
    seed file)."""
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        settings = Settings(_env_file=None, data_dir=data_dir, database_url=url)  # type: ignore[call-arg]
        await AgentCatalog(db, ProviderRegistry([]), settings).seed()
    finally:
        await db.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per run, never started; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def seeded_sqlite_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template with the built-in agents stored, as after a first start (which then has nothing to
    seed: a quarter of an app's start in the tests)."""
    directory = tmp_path_factory.mktemp("seeded")
    path = directory / "template.db"
    shutil.copyfile(sqlite_template, path)
    asyncio.run(_seed_agents(f"sqlite+aiosqlite:///{path}", directory))
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.PostgresServer | str]:
    """A PostgreSQL server, or the reason there is none."""
    server = postgres.find_or_start()
    yield server
    if isinstance(server, postgres.PostgresServer):
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[redis_support.ThrowawayRedis | str | None]:
    """The test Redis: the one on 127.0.0.1:6379, a throwaway one, or None."""
    found = redis_support.find_or_start_redis()
    yield found
    if isinstance(found, redis_support.ThrowawayRedis):
        found.stop()


@pytest.fixture
def redis_url(redis_server: redis_support.ThrowawayRedis | str | None) -> str:
    """The URL of the test Redis (skips, or fails under CI, when there is none)."""
    return redis_support.redis_url_of(redis_server)


@pytest.fixture(scope="session")
def pg_template(
    pg_server: postgres.PostgresServer | str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str | None]:
    """Name of a migrated template database, the built-in agents stored (None without PostgreSQL)."""
    if isinstance(pg_server, str):
        yield None
        return
    name = postgres.unique_name("ailab_tpl")
    asyncio.run(pg_server.execute(f'CREATE DATABASE "{name}"'))
    upgrade(pg_server.url(name))
    asyncio.run(_seed_agents(pg_server.url(name), tmp_path_factory.mktemp("pg-seeded")))
    yield name
    asyncio.run(pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _sqlite_copy(template: Path, directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "ai_lab.db"
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def database_url(tmp_path: Path, seeded_sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database, its built-in agents stored."""
    return _sqlite_copy(seeded_sqlite_template, tmp_path / "data")


@pytest.fixture
def unstarted_database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database that no server has started on (nothing seeded)."""
    return _sqlite_copy(sqlite_template, tmp_path / "data")


@pytest.fixture
def postgres_url(pg_server: postgres.PostgresServer | str, pg_template: str | None) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (skipped with the reason when none is available; failed
    under ``CI=true``)."""
    if isinstance(pg_server, str) or pg_template is None:
        unavailable(f"PostgreSQL unavailable: {pg_server}")
    name = postgres.unique_name("ailab_test")
    asyncio.run(pg_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_server.url(name)
    asyncio.run(pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path, seeded_sqlite_template: Path) -> str:
    """A fresh, migrated database, its built-in agents stored: the test runs once on SQLite and once on
    PostgreSQL."""
    if request.param == "sqlite":
        return _sqlite_copy(seeded_sqlite_template, tmp_path / "data")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings on this test's data dir; keyword arguments override.

    Provider settings are named as in the environment (``openai_compat_base_url``; see
    :mod:`tests.support.provider_settings`).
    """
    master_key = Fernet.generate_key().decode()

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "admin_password": ADMIN_PASSWORD,
            "master_key": master_key,
            "auth": "on",
            "log_level": "info",
            "local_threads": LOCAL_THREADS,
        }
        values.update(overrides)
        return Settings(_env_file=None, **fold(values))  # type: ignore[call-arg]

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """Settings on a fresh SQLite database."""
    return make_settings(database_url=database_url)


def bearer(services: Services, user: Principal) -> dict[str, str]:
    """An Authorization header for ``user``, without the cost of a password login."""
    return {"Authorization": f"Bearer {services.auth.issue_access_token(user)}"}


@asynccontextmanager
async def _app_client(
    settings: Settings, *, login: bool = True, base_url: str = "http://testserver", fast_lane: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, migrate=False, fast_lane=fast_lane)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            client.app = app  # type: ignore[attr-defined]
            client.services = services  # type: ignore[attr-defined]
            if login:
                client.headers.update(bearer(services, await services.auth.local_admin()))
            yield client


AppClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def fast_lane() -> bool:
    """Whether the app under test has the fast lane; tests/gateway and tests/chat parametrise it with
    :func:`both_lanes`."""
    return True


def both_lanes(metafunc: pytest.Metafunc) -> None:
    """For a conftest's ``pytest_generate_tests``: run each test that builds the app once through the
    fast lane and once through FastAPI's routes, so neither copy of a hot route can break unnoticed.

    Tests marked slow (the embedded model, server processes) keep the fast lane only: they would double
    the suite's slowest minutes to check what the quick tests already check.
    """
    if "fast_lane" in metafunc.fixturenames and metafunc.definition.get_closest_marker("slow") is None:
        metafunc.parametrize("fast_lane", [True, False], ids=["fast-lane", "routed"])


@pytest.fixture
def app_client(fast_lane: bool) -> AppClientFactory:
    """``async with app_client(settings) as client``: the app started on ``settings``, as admin."""
    return functools.partial(_app_client, fast_lane=fast_lane)


@pytest.fixture
async def client(settings: Settings, fast_lane: bool) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the ASGI app (SQLite), logged in as admin; ``client.services`` is at hand."""
    async with _app_client(settings, fast_lane=fast_lane) as c:
        yield c


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    """A recording OpenAI-compatible upstream on 127.0.0.1 that answers ``"echo: <the last message>"``
    (model ``echo``; any key). Its behaviour switches (``stall_after``, ``endless``, ...) pace streams."""
    async with FakeOpenAI(any_key=True, models=["echo"], echo=True) as server:
        yield server


@pytest.fixture
async def upstream_client(
    settings: Settings, upstream: FakeOpenAI, fast_lane: bool
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a fresh SQLite database, as admin, with ``openai-compat`` pointing at ``upstream``."""
    settings = configure(settings, openai_compat_base_url=upstream.base_url)
    async with _app_client(settings, fast_lane=fast_lane) as c:
        yield c
