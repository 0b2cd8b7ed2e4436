"""Queries on chat sessions, their messages and agent states.

Sessions are listed newest first by the keyset ``(created_at, id)`` (never OFFSET); messages by ``seq``.
The functions a chat turn needs take a synchronous ``Connection``: they run as transaction functions
(:meth:`~ailab.db.engine.Database.run_write`), or from an async transaction through ``run_sync``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Row,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.repos.runs import RunEnd, finish_runs
from ailab.db.tables import AgentState, ChatSession, Message, Run, utcnow

SESSIONS = cast(Table, ChatSession.__table__)
MESSAGES = cast(Table, Message.__table__)


async def create_session(
    db: AsyncSession,
    *,
    session_id: str,
    owner_id: str | None,
    title: str = "",
    created_at: dt.datetime | None = None,
) -> ChatSession:
    """Insert a session; the caller's transaction decides (an existing id raises IntegrityError)."""
    now = created_at or utcnow()
    row = ChatSession(
        id=session_id, owner_id=owner_id, title=title, next_seq=0, created_at=now, updated_at=now
    )
    db.add(row)
    await db.flush()
    return row


async def get_session(db: AsyncSession, session_id: str, owner_id: str | None) -> ChatSession | None:
    """The session with this id if it belongs to ``owner_id``."""
    row = await db.get(ChatSession, session_id)
    if row is None or row.owner_id != owner_id:
        return None
    return row


async def session_exists(db: AsyncSession, session_id: str) -> bool:
    """Whether any user holds a session with this id."""
    return (await db.get(ChatSession, session_id)) is not None


async def list_sessions(
    db: AsyncSession,
    owner_id: str | None,
    *,
    limit: int,
    after: tuple[dt.datetime, str] | None = None,
    title_contains: str | None = None,
) -> Sequence[ChatSession]:
    """Up to ``limit`` sessions of the owner, newest first, strictly after the keyset ``after``; with
    ``title_contains``, only those whose title contains it (any case; ``%`` and ``_`` are literal)."""
    query = select(ChatSession).where(ChatSession.owner_id == owner_id)
    if title_contains:
        query = query.where(ChatSession.title.icontains(title_contains, autoescape=True))
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(
                ChatSession.created_at < created,
                and_(ChatSession.created_at == created, ChatSession.id < last_id),
            )
        )
    query = query.order_by(ChatSession.created_at.desc(), ChatSession.id.desc()).limit(limit)
    return (await db.scalars(query)).all()


async def rename_session(db: AsyncSession, row: ChatSession, title: str) -> ChatSession:
    """Set a session's title."""
    row.title = title
    row.updated_at = utcnow()
    await db.flush()
    return row


async def delete_session(db: AsyncSession, session_id: str) -> None:
    """Delete a session with its messages and agent states."""
    # Explicit deletes: SQLite only cascades when foreign keys are on, and we don't rely on it.
    await db.execute(delete(Message).where(Message.session_id == session_id))
    await db.execute(delete(AgentState).where(AgentState.session_id == session_id))
    await db.execute(delete(Run).where(Run.session_id == session_id))
    await db.execute(delete(ChatSession).where(ChatSession.id == session_id))


_ANY_OWNER = object()
# The hot path's statements are built once: constructing a SQLAlchemy statement costs more CPU than
# running it on SQLite. Parameters are bound per call.
_RESERVE = (
    update(SESSIONS)
    .where(SESSIONS.c.id == bindparam("sid"))
    .values(next_seq=SESSIONS.c.next_seq + bindparam("count"), updated_at=bindparam("now"))
    .returning(SESSIONS.c.next_seq)
)
_RESERVE_OWNED = _RESERVE.where(SESSIONS.c.owner_id.is_not_distinct_from(bindparam("owner")))
_INSERT_MESSAGE = insert(MESSAGES).returning(MESSAGES.c.id)
_INSERT_SESSION = insert(SESSIONS)
_INSERT_FIRST = insert(MESSAGES)
_FIND_SESSION = select(SESSIONS.c.id, SESSIONS.c.owner_id).where(SESSIONS.c.id == bindparam("sid"))
_RECENT_MESSAGES = (
    select(MESSAGES.c.role, MESSAGES.c.content, MESSAGES.c.files)
    .where(MESSAGES.c.session_id == bindparam("sid"))
    .order_by(MESSAGES.c.seq.desc())
    .limit(bindparam("limit"))
)


def find_session(conn: Connection, session_id: str) -> Row[*tuple[Any, ...]] | None:
    """``(id, owner_id)`` of the session with this id, whoever owns it."""
    return conn.execute(_FIND_SESSION, {"sid": session_id}).first()


def insert_session(
    conn: Connection, *, session_id: str, owner_id: str | None, title: str, next_seq: int = 0
) -> dt.datetime:
    """Insert a session (empty: ``next_seq`` 0; an existing id raises IntegrityError); returns its time."""
    now = utcnow()
    values = {"id": session_id, "owner_id": owner_id, "title": title, "next_seq": next_seq}
    conn.execute(_INSERT_SESSION, {**values, "created_at": now, "updated_at": now})
    return now


def start_session(
    conn: Connection, *, session_id: str, owner_id: str | None, title: str, first: NewMessage
) -> None:
    """Insert a session with its first message (numbered 0: nothing to reserve in a session that is new;
    an existing id raises IntegrityError)."""
    now = insert_session(conn, session_id=session_id, owner_id=owner_id, title=title, next_seq=1)
    conn.execute(_INSERT_FIRST, _row(first, 0, now))


def recent_messages(
    conn: Connection, session_id: str, limit: int
) -> list[tuple[str, str, list[dict[str, Any]] | None]]:
    """``(role, content, files)`` of the newest ``limit`` messages of a session, oldest first."""
    rows = [
        (row.role, row.content, row.files)
        for row in conn.execute(_RECENT_MESSAGES, {"sid": session_id, "limit": limit})
    ]
    rows.reverse()
    return rows


def reserve_seqs(
    conn: Connection, session_id: str, count: int = 1, *, owner_id: object = _ANY_OWNER
) -> int | None:
    """Reserve ``count`` message numbers for a session; returns the first, or None if no such session.

    The UPDATE takes the session row's write lock until the transaction ends, so concurrent writers to
    one session get disjoint, gap-free numbers in commit order. With ``owner_id`` the session must
    also belong to that owner, in the same statement.
    """
    params: dict[str, Any] = {"sid": session_id, "count": count, "now": utcnow()}
    statement = _RESERVE
    if owner_id is not _ANY_OWNER:
        statement, params["owner"] = _RESERVE_OWNED, owner_id
    end = conn.execute(statement, params).scalar_one_or_none()
    return None if end is None else int(end) - count


def append_message(conn: Connection, item: NewMessage) -> Message | None:
    """Append one message at the end of its session (of ``item.owner_id`` if given); None if there is
    no such session."""
    seq = reserve_seqs(conn, item.session_id, owner_id=item.owner_id)
    if seq is None:
        return None
    values = _row(item, seq, utcnow())
    message_id = conn.execute(_INSERT_MESSAGE, values).scalar_one()
    return Message(id=message_id, **values)  # not attached to any ORM session: a plain value


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append (to the session of ``owner_id`` when it is given)."""

    session_id: str
    role: str
    content: str
    owner_id: object = _ANY_OWNER
    thought_process: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: str = "complete"
    created_at: dt.datetime | None = None
    run_end: RunEnd | None = None  # the run this message answers, ended in the same transaction
    run_id: str | None = None  # the run this message starts (its answer names it through run_end)
    files: list[dict[str, Any]] | None = None  # the files a user message came with


_INSERT_MESSAGES = insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True)


def _row(item: NewMessage, seq: int, now: dt.datetime) -> dict[str, Any]:
    """The ``messages`` row of ``item`` as message ``seq`` of its session."""
    return {
        "session_id": item.session_id,
        "seq": seq,
        "role": item.role,
        "content": item.content,
        "thought_process": item.thought_process,
        "model": item.model,
        "prompt_tokens": item.prompt_tokens,
        "completion_tokens": item.completion_tokens,
        "status": item.status,
        "created_at": item.created_at or now,
        "run_id": item.run_end.run_id if item.run_end is not None else item.run_id,
        "files": item.files,
    }


def _reserve_all(
    conn: Connection, counts: dict[tuple[str, object], int]
) -> dict[tuple[str, object], int | None]:
    """The first reserved number of each ``(session, owner)``, or None where there is no such session.

    On PostgreSQL, one statement for all the sessions: it locks their rows in id order (a sub-select
    ``ORDER BY id FOR UPDATE``), so batches in flight at once never wait on each other in a cycle, and
    adds each session's count. Elsewhere (SQLite has one writer anyway), or when one session comes with
    two owners, one reservation per session in id order.
    """
    ordered = sorted(counts.items(), key=lambda entry: entry[0][0])
    sids = {sid for sid, _ in counts}
    if conn.dialect.name != "postgresql" or len(counts) == 1 or len(sids) != len(counts):
        return {key: reserve_seqs(conn, key[0], count, owner_id=key[1]) for key, count in ordered}
    wanted = [
        SESSIONS.c.id == sid
        if owner is _ANY_OWNER
        else and_(SESSIONS.c.id == sid, SESSIONS.c.owner_id.is_not_distinct_from(owner))
        for (sid, owner), _ in ordered
    ]
    locked = select(SESSIONS.c.id).where(or_(*wanted)).order_by(SESSIONS.c.id).with_for_update().subquery()
    increment = case({sid: count for (sid, _), count in ordered}, value=SESSIONS.c.id)
    statement = (
        update(SESSIONS)
        .where(SESSIONS.c.id == locked.c.id)
        .values(next_seq=SESSIONS.c.next_seq + increment, updated_at=utcnow())
        .returning(SESSIONS.c.id, SESSIONS.c.next_seq)
    )
    ends = {sid: int(end) for sid, end in conn.execute(statement)}
    return {key: (ends[key[0]] - count if key[0] in ends else None) for key, count in ordered}


def append_many(conn: Connection, items: Sequence[NewMessage]) -> list[Message | None]:
    """Append messages to any sessions: their numbers reserved together (:func:`_reserve_all`), then one
    insert for them all, and the runs they answer ended. A session's messages are numbered in the order
    given; an item whose session (of its owner) does not exist gets None."""
    if not items:
        return []
    counts: dict[tuple[str, object], int] = {}
    for item in items:
        key = (item.session_id, item.owner_id)
        counts[key] = counts.get(key, 0) + 1
    firsts = _reserve_all(conn, counts)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    placed: list[int | None] = []  # each item's row index, or None
    for item in items:
        key = (item.session_id, item.owner_id)
        first = firsts[key]
        if first is None:
            placed.append(None)
            continue
        firsts[key] = first + 1
        placed.append(len(rows))
        rows.append(_row(item, first, now))
    if len(rows) == 1:  # the usual group: the bulk insert's ordered RETURNING costs more for one row
        ids = [conn.execute(_INSERT_MESSAGE, rows[0]).scalar_one()]
    else:
        ids = list(conn.execute(_INSERT_MESSAGES, rows).scalars()) if rows else []
    finish_runs(
        conn,
        [
            (item.run_end, ids[index])
            for item, index in zip(items, placed, strict=True)
            if item.run_end and index is not None
        ],
    )
    # Plain values, not attached to any ORM session.
    return [None if index is None else Message(id=ids[index], **rows[index]) for index in placed]


async def append_messages(db: AsyncSession, session_id: str, messages: Sequence[dict[str, Any]]) -> int:
    """Append many messages (dicts of Message columns) in order, in one statement; returns the count."""
    if not messages:
        return 0
    conn = await db.connection()
    first = await conn.run_sync(reserve_seqs, session_id, len(messages))
    if first is None:
        raise LookupError(f"no session {session_id!r}")
    now = utcnow()
    rows = [
        {"created_at": now, "status": "complete", **message, "session_id": session_id, "seq": first + i}
        for i, message in enumerate(messages)
    ]
    await db.execute(insert(Message), rows)
    return len(rows)


async def list_messages(
    db: AsyncSession, session_id: str, *, after_seq: int = -1, limit: int | None = None
) -> Sequence[Message]:
    """Messages of a session in order, those with ``seq > after_seq``."""
    query = (
        select(Message).where(Message.session_id == session_id, Message.seq > after_seq).order_by(Message.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    return (await db.scalars(query)).all()


async def count_messages(db: AsyncSession, session_id: str) -> int:
    """How many messages a session holds."""
    query = select(func.count()).select_from(Message).where(Message.session_id == session_id)
    return int((await db.execute(query)).scalar_one())


async def add_agent_state(db: AsyncSession, session_id: str, **fields: Any) -> AgentState:
    """Store one agent step."""
    row = AgentState(session_id=session_id, **fields)
    db.add(row)
    await db.flush()
    return row


async def list_agent_states(db: AsyncSession, session_id: str) -> Sequence[AgentState]:
    """Agent steps of a session in the order they were stored."""
    query = select(AgentState).where(AgentState.session_id == session_id).order_by(AgentState.id)
    return (await db.scalars(query)).all()
