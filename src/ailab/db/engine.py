"""Engine and sessions for SQLite and PostgreSQL.

SQLite runs in WAL mode with foreign keys on. Its default deferred transactions fail at once with
"database is locked" when a reader tries to become a writer, so writes go through :meth:`Database.write`,
which opens the transaction with ``BEGIN IMMEDIATE`` and waits on ``busy_timeout`` instead; reads use
plain ``BEGIN`` and never block on a writer. PostgreSQL uses asyncpg with a sized pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "ailab_write"


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """Create an async engine for ``url`` with the pragmas and pool that fit its dialect."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _install_sqlite_hooks(engine)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, pool_recycle=1800
    )


class Database:
    """The process's connection pool and the two ways to use it: read and write."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; rolled back at the end."""
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction, committed on success, rolled back on error."""
        async with self._writer() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Run a trivial query; raises when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def pool_status(self) -> dict[str, int]:
        """Checked-out and idle connections of the pool (zeros where the pool does not count)."""
        pool: Any = self.engine.pool
        try:
            return {"in_use": int(pool.checkedout()), "idle": int(pool.checkedin())}
        except AttributeError:
            return {"in_use": 0, "idle": 0}

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
