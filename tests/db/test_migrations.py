"""Migrations: empty database to head, idempotent re-runs, concurrent starts, same schema everywhere."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from ailab.db.engine import create_engine
from ailab.db.migrate import head_revision, upgrade
from ailab.db.tables import Base
from tests.support import postgres
from tests.support.postgres import free_port
from tests.support.unavailable import unavailable

CLI = str(Path(sys.executable).with_name("ai-lab"))


async def _tables_and_revision(url: str) -> tuple[set[str], str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()
    return tables, revision


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    server = request.getfixturevalue("pg_server")
    if isinstance(server, str):
        unavailable(f"PostgreSQL unavailable: {server}")
    name = postgres.unique_name("ailab_empty")
    asyncio.run(server.execute(f'CREATE DATABASE "{name}"'))
    request.addfinalizer(
        lambda: asyncio.run(server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    )
    return server.url(name)


def test_upgrade_empty_database_to_head(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    tables, revision = asyncio.run(_tables_and_revision(empty_database_url))
    assert set(Base.metadata.tables) <= tables
    assert revision == head_revision()


def _cli_env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    env.update(AILAB_DATABASE_URL=url, AILAB_DATA_DIR=str(tmp_path / "data"))
    return env


@pytest.mark.slow
def test_cli_upgrade_twice_is_a_noop(empty_database_url: str, tmp_path: Path) -> None:
    env = _cli_env(empty_database_url, tmp_path)
    first = subprocess.run([CLI, "db", "upgrade"], env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    before = asyncio.run(_tables_and_revision(empty_database_url))
    second = subprocess.run([CLI, "db", "upgrade"], env=env, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr
    assert "Running upgrade" not in second.stderr
    assert asyncio.run(_tables_and_revision(empty_database_url)) == before


@pytest.mark.slow
def test_concurrent_upgrades_are_safe(empty_database_url: str, tmp_path: Path) -> None:
    env = _cli_env(empty_database_url, tmp_path)
    processes = [
        subprocess.Popen(
            [CLI, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [(*p.communicate(timeout=120), p.returncode) for p in processes]
    assert all(code == 0 for _, _, code in results), results
    tables, revision = asyncio.run(_tables_and_revision(empty_database_url))
    assert revision == head_revision()
    assert set(Base.metadata.tables) <= tables


@pytest.mark.slow
def test_unreachable_database_fails_cleanly(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    result = subprocess.run(
        [CLI, "db", "upgrade"], env=_cli_env(url, tmp_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "migration failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_history_written_before_weights_counts_once_per_row(empty_database_url: str) -> None:
    """0008 adds ``performance_metrics.weight``: rows already there stand for one request each."""
    upgrade(empty_database_url, "0007")

    async def write_then_read() -> list[tuple[str, float]]:
        engine = create_engine(empty_database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO performance_metrics (kind, name, value, ok, extra, created_at) "
                        "VALUES ('http', 'GET /old', 2.5, true, '{}', CURRENT_TIMESTAMP)"
                    )
                )
            await asyncio.to_thread(upgrade, empty_database_url)
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT name, weight FROM performance_metrics"))
                return [(name, float(weight)) for name, weight in rows]
        finally:
            await engine.dispose()

    assert asyncio.run(write_then_read()) == [("GET /old", 1.0)]
