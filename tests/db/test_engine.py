"""Transaction functions (``Database.run_write`` / ``run_read``) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from ailab.db.engine import Database
from ailab.db.repos import sessions as repo
from ailab.db.repos.users import USERS
from ailab.db.tables import ChatSession, Message, utcnow


@pytest.fixture
async def db(any_database_url: str) -> AsyncIterator[Database]:
    database = Database(any_database_url)
    yield database
    await database.close()


def add_users(conn: Connection, *user_ids: str) -> None:
    now = utcnow()
    rows = [
        {
            "id": uid,
            "name": uid,
            "password_hash": "-",
            "role": "user",
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }
        for uid in user_ids
    ]
    conn.execute(insert(USERS), rows)


async def session_count(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(select(func.count()).select_from(ChatSession))).scalar_one())


async def test_a_write_commits_when_the_function_returns(db: Database) -> None:
    def create(conn: Connection, session_id: str) -> int | None:
        repo.insert_session(conn, session_id=session_id, owner_id=None, title="t")
        message = repo.append_message(conn, repo.NewMessage(session_id, "user", "hello"))
        return message.seq if message is not None else None

    assert await db.run_write(create, "s-commit") == 0
    async with db.read() as session:
        stored = (await session.scalars(select(Message).where(Message.session_id == "s-commit"))).all()
    assert [(m.seq, m.content) for m in stored] == [(0, "hello")]


async def test_a_write_that_raises_changes_nothing(db: Database) -> None:
    def create_then_fail(conn: Connection) -> None:
        repo.insert_session(conn, session_id="s-doomed", owner_id=None, title="t")
        repo.append_message(conn, repo.NewMessage("s-doomed", "user", "lost"))
        raise LookupError("refused after writing")

    with pytest.raises(LookupError, match="refused after writing"):
        await db.run_write(create_then_fail)
    assert await session_count(db) == 0
    # The connection is usable afterwards.
    await db.run_write(repo.insert_session, session_id="s-after", owner_id=None, title="t")
    assert await session_count(db) == 1


async def test_a_read_sees_committed_rows_and_keeps_nothing(db: Database) -> None:
    await db.run_write(add_users, "u1")
    await db.run_write(repo.insert_session, session_id="s-read", owner_id="u1", title="t")
    found = await db.run_read(repo.find_session, "s-read")
    assert found is not None and (found.id, found.owner_id) == ("s-read", "u1")
    assert await db.run_read(repo.find_session, "s-missing") is None

    await db.run_read(repo.insert_session, session_id="s-not-kept", owner_id=None, title="t")
    assert await db.run_read(repo.find_session, "s-not-kept") is None


async def test_concurrent_appends_get_gap_free_numbers(db: Database) -> None:
    await db.run_write(repo.insert_session, session_id="s-busy", owner_id=None, title="t")
    messages = await asyncio.gather(
        *(db.run_write(repo.append_message, repo.NewMessage("s-busy", "user", str(i))) for i in range(20))
    )
    assert sorted(m.seq for m in messages if m is not None) == list(range(20))
    async with db.read() as session:
        stored = (await session.scalars(select(Message).where(Message.session_id == "s-busy"))).all()
    assert sorted(m.content for m in stored) == sorted(str(i) for i in range(20))


async def test_appending_to_a_missing_or_foreign_session_returns_none(db: Database) -> None:
    await db.run_write(add_users, "alice", "bob")
    await db.run_write(repo.insert_session, session_id="s-owned", owner_id="alice", title="t")
    assert await db.run_write(repo.append_message, repo.NewMessage("s-none", "user", "x")) is None
    foreign = await db.run_write(repo.append_message, repo.NewMessage("s-owned", "user", "x", owner_id="bob"))
    assert foreign is None
    mine = await db.run_write(repo.append_message, repo.NewMessage("s-owned", "user", "x", owner_id="alice"))
    assert mine is not None and mine.seq == 0


async def test_sqlite_transaction_functions_use_the_same_pragmas(database_url: str) -> None:
    db = Database(database_url)
    try:

        def pragmas(conn: Connection) -> tuple[object, ...]:
            return tuple(
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            )

        assert await db.run_read(pragmas) == ("wal", 1, 30_000)
    finally:
        await db.close()


async def test_database_errors_never_carry_the_bound_values(any_database_url: str) -> None:
    # SQLAlchemy puts the parameters of a failed statement into the error's text, which is logged with
    # its traceback: message text and names would reach the logs.
    db = Database(any_database_url)
    canary = "private-message-text-canary"
    try:
        with pytest.raises(DBAPIError) as failed:
            async with db.write() as session:
                await session.execute(text("INSERT INTO no_such_table (x) VALUES (:x)"), {"x": canary})
        assert canary not in str(failed.value)

        def insert(conn: Connection) -> None:
            conn.execute(text("INSERT INTO no_such_table (x) VALUES (:x)"), {"x": canary})

        with pytest.raises(DBAPIError) as failed_again:
            await db.run_write(insert)
        assert canary not in str(failed_again.value)
    finally:
        await db.close()
