"""Group commit on SQLite and PostgreSQL: shared transactions, in order, each write acknowledged once
committed, a failing write failing alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import Connection, select

from ailab.db.engine import Database
from ailab.db.group_commit import GroupCommit
from ailab.db.repos import sessions as repo
from ailab.db.tables import Message
from ailab.services.sessions.service import SessionService


@pytest.fixture
async def db(any_database_url: str) -> AsyncIterator[Database]:
    database = Database(any_database_url)
    yield database
    await database.close()


async def stored(url: str, session_id: str) -> list[tuple[int, str]]:
    """``(seq, content)`` of a session, read through a connection of its own."""
    other = Database(url)
    try:
        async with other.read() as session:
            rows = await session.execute(
                select(Message.seq, Message.content)
                .where(Message.session_id == session_id)
                .order_by(Message.seq)
            )
            return [(seq, content) for seq, content in rows]
    finally:
        await other.close()


async def test_concurrent_appends_share_transactions_and_keep_each_writers_order(
    db: Database, any_database_url: str
) -> None:
    service = SessionService(db)
    sessions = [(await service.create(None, f"s{i}")).id for i in range(4)]

    async def writer(number: int) -> None:  # one after another, as a client waiting for each answer
        sid = sessions[number % 4]
        for n in range(25):
            row = await service.append(None, sid, "user", f"w{number}-{n}")
            assert row.content == f"w{number}-{n}"  # each caller gets its own row back

    await asyncio.gather(*(writer(i) for i in range(8)))
    for index, sid in enumerate(sessions):
        rows = await stored(any_database_url, sid)  # another connection: acknowledged = committed
        assert [seq for seq, _ in rows] == list(range(50))  # one total, gap-free order
        for number in (index, index + 4):  # the two writers of this session, each in its own order
            mine = [text for _, text in rows if text.startswith(f"w{number}-")]
            assert mine == [f"w{number}-{n}" for n in range(25)]
    assert service._appends.groups < 200 / 2  # they were grouped, not one transaction each


def refusing_bad(conn: Connection, items: Sequence[repo.NewMessage]) -> list[Message | None]:
    """``append_many``, except that a batch holding a message "bad" fails (after writing the others)."""
    results = repo.append_many(conn, items)
    if any(item.content == "bad" for item in items):
        raise ValueError("this write is refused")
    return results


def new(session_id: str, content: str) -> repo.NewMessage:
    return repo.NewMessage(session_id, "user", content)


async def test_a_failing_write_fails_alone_and_nothing_is_doubled(
    db: Database, any_database_url: str
) -> None:
    sid = (await SessionService(db).create(None, "s")).id
    group: GroupCommit[repo.NewMessage, Message | None] = GroupCommit(db, refusing_bad, parallel=1)
    first = asyncio.ensure_future(group.run(new(sid, "first")))
    await asyncio.sleep(0)  # the first write is under way: the next ones queue up behind it, together
    results = await asyncio.gather(
        group.run(new(sid, "a")),
        group.run(new(sid, "bad")),
        group.run(new(sid, "b")),
        group.run(new("no-such-session", "lost")),
        return_exceptions=True,
    )
    assert (await first) is not None
    assert isinstance(results[1], ValueError)
    assert results[3] is None  # no such session: the repository's answer, not an error
    assert [r.content for r in (results[0], results[2])] == ["a", "b"]  # type: ignore[union-attr]
    # The failed group was rolled back whole and its other items written once each, in order.
    assert await stored(any_database_url, sid) == [(0, "first"), (1, "a"), (2, "b")]
    assert group.groups == 4  # the first alone, then a, b and the missing session one by one


async def test_a_cancelled_caller_does_not_take_its_write_back(db: Database, any_database_url: str) -> None:
    sid = (await SessionService(db).create(None, "s")).id
    group: GroupCommit[repo.NewMessage, Message | None] = GroupCommit(db, repo.append_many)
    caller = asyncio.ensure_future(group.run(new(sid, "sent")))
    await asyncio.sleep(0)  # queued and being written
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await group.wait_idle()
    assert await stored(any_database_url, sid) == [(0, "sent")]


async def test_append_many_numbers_each_session_in_order_and_skips_missing_or_foreign_ones(
    db: Database, any_database_url: str
) -> None:
    service = SessionService(db)
    mine, other = (await service.create(None, "x")).id, (await service.create(None, "y")).id
    theirs = (await service.create(None, "z")).id
    foreign = repo.NewMessage(theirs, "user", "not yours", owner_id="someone-else")
    items = [
        new(other, "o1"),
        new(mine, "m1"),
        new("missing", "z"),
        foreign,
        new(mine, "m2"),
        new(other, "o2"),
    ]
    rows = await db.run_write(repo.append_many, items)
    assert [(r.session_id, r.seq, r.content) if r else None for r in rows] == [
        (other, 0, "o1"),
        (mine, 0, "m1"),
        None,
        None,  # a session of another owner is not touched: its numbering goes on from 0
        (mine, 1, "m2"),
        (other, 1, "o2"),
    ]
    assert (await service.append(None, theirs, "user", "first")).seq == 0
    wrong_owner = repo.NewMessage(mine, "user", "intruder", owner_id="someone-else")
    assert await db.run_write(repo.append_many, [wrong_owner]) == [None]
    assert await stored(any_database_url, mine) == [(0, "m1"), (1, "m2")]
