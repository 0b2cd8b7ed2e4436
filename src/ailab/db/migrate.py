"""Alembic migrations, run once under a lock.

Several processes may start at once (workers, replicas). On PostgreSQL the upgrade runs in one
transaction holding an advisory lock, so the second process waits and then finds the schema at head;
on SQLite an exclusive ``flock`` on ``<db file>.migrate.lock`` does the same. A failing migration raises
and stops the start: nothing is marked applied that did not apply.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every AI-Lab process.
PG_MIGRATION_LOCK_ID = 0x41494C4142  # "AILAB"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``; blocking, call it from a thread in async code."""
    config = alembic_config(url)
    if make_url(url).get_backend_name() == "sqlite":
        with _sqlite_file_lock(url):
            command.upgrade(config, revision)
    else:
        command.upgrade(config, revision)


def head_revision() -> str | None:
    """The newest revision shipped with this version."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision_sync(connection: object) -> str | None:
    """The revision a (sync) connection's database is at."""
    return MigrationContext.configure(connection).get_current_revision()  # type: ignore[arg-type]
