"""Engine and sessions for SQLite and PostgreSQL.

SQLite runs in WAL mode with foreign keys on. Its default deferred transactions fail at once with
"database is locked" when a reader tries to become a writer, so writes go through :meth:`Database.write`,
which opens the transaction with ``BEGIN IMMEDIATE`` and waits on ``busy_timeout`` instead; reads use
plain ``BEGIN`` and never block on a writer. PostgreSQL uses asyncpg with a sized pool.

Hot paths (a chat turn's writes, the credential lookup) use *transaction functions* instead:
:meth:`Database.run_write` and :meth:`Database.run_read` run a plain function of a synchronous
:class:`~sqlalchemy.engine.Connection` inside one transaction. On PostgreSQL that is ``run_sync`` on the
async engine. On SQLite it is one hop to the process's database thread, which owns a connection of its
own: aiosqlite pays a thread hop per DBAPI call (cursor, execute, fetch, close), about 4 ms for a turn's
three statements on a small machine, where one hop and the same statements cost about 1 ms. The single
thread also lines up this process's writes instead of letting them wait on the file lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_WAL_CHECKPOINT_PAGES = 10_000
_WRITE_OPTION = "ailab_write"
P = ParamSpec("P")
T = TypeVar("T")
TransactionFunction = Callable[Concatenate[Connection, P], T]


def _install_sqlite_hooks(sync_engine: Engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint every ~40 MB of WAL, not SQLite's 4 MB: a page written by many commits in between
        # (a session's row, an index's newest leaf) is copied back once, not once per 4 MB.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """Create an async engine for ``url`` with the pragmas and pool that fit its dialect.

    ``hide_parameters``: an error's message never carries the bound values (message text, names), which
    would otherwise reach the logs with its traceback.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
        )
        _install_sqlite_hooks(engine.sync_engine)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        hide_parameters=True,
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
        self._sqlite: _SQLiteThread | None = None
        if self.is_sqlite:
            # The same file through the standard library's driver, for the transaction functions.
            sync_engine = create_sync_engine(
                make_url(url).set(drivername="sqlite"),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                hide_parameters=True,
            )
            _install_sqlite_hooks(sync_engine)
            self._sqlite = _SQLiteThread(sync_engine)

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

    async def run_write(self, fn: TransactionFunction[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(connection, ...)`` in one write transaction: committed when it returns, rolled back if
        it raises. ``fn`` is synchronous and must only use the database (see the module docstring)."""
        if self._sqlite is not None:
            return await self._sqlite.run(True, fn, *args, **kwargs)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn, *args, **kwargs)

    async def run_read(self, fn: TransactionFunction[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(connection, ...)`` in one read transaction (rolled back at the end)."""
        if self._sqlite is not None:
            return await self._sqlite.run(False, fn, *args, **kwargs)
        async with self.engine.connect() as conn:
            try:
                return await conn.run_sync(fn, *args, **kwargs)
            finally:
                await conn.rollback()

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
        """Close every pooled connection (and the SQLite thread)."""
        if self._sqlite is not None:
            await asyncio.to_thread(self._sqlite.close)
        await self.engine.dispose()


class _SQLiteThread:
    """One thread that owns one SQLite connection and runs transaction functions on it, in turn."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None  # touched only by the thread (and close, after it)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ailab-sqlite")

    async def run(self, write: bool, fn: TransactionFunction[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        def call() -> T:
            conn = self._connect()
            conn.execution_options(**{_WRITE_OPTION: write})  # BEGIN IMMEDIATE for writes (begin hook)
            transaction = conn.begin()
            try:
                result = fn(conn, *args, **kwargs)
                if write:
                    transaction.commit()
                return result
            finally:
                if transaction.is_active:
                    transaction.rollback()

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed or self._connection.invalidated:
            self._connection = self._engine.connect()
        return self._connection

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()
