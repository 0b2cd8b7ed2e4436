"""Fixtures of the import tests: a database with an owner, and the CLI as a real subprocess."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ailab.db.engine import Database
from tests.conftest import ADMIN_PASSWORD
from tests.importer.helpers import add_user

# The sample lives next to the checkout (../shared/legacy/ai-lab-v2), as the issue says.
DEFAULT_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "legacy" / "ai-lab-v2"
SAMPLE = Path(os.environ.get("AILAB_V2_SAMPLE", DEFAULT_SAMPLE))


@pytest.fixture
def sample() -> Path:
    """The real AI-Lab v2 sample (read-only; never copied, the tests prove it stays untouched)."""
    if not (SAMPLE / "ai_lab.db").is_file():
        pytest.skip(f"the AI-Lab v2 sample is not at {SAMPLE} (set AILAB_V2_SAMPLE)")
    return SAMPLE


@pytest.fixture
async def db(any_database_url: str) -> AsyncIterator[Database]:
    """The test's database (SQLite, then PostgreSQL)."""
    database = Database(any_database_url)
    yield database
    await database.close()


@pytest.fixture
async def owner(db: Database) -> str:
    """The id of the user owning the imported sessions."""
    return await add_user(db, "alice")


@pytest.fixture
def cli_env(tmp_path: Path) -> Callable[[str], dict[str, str]]:
    """The environment of an ``ai-lab`` subprocess on a database URL."""
    master_key = Fernet.generate_key().decode()

    def build(database_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
        env.update(
            AILAB_DATA_DIR=str(tmp_path / "data"),
            AILAB_DATABASE_URL=database_url,
            AILAB_MASTER_KEY=master_key,
            AILAB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        return env

    return build
