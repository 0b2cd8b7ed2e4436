"""Queries of the legacy import: what exists already, and bulk inserts.

Lookups by many keys are split into ``IN`` lists of at most :data:`IN_CHUNK` values (SQLite and asyncpg
both cap the parameters of one statement). Inserts take lists of column dicts and go out as multi-row
INSERTs / executemany, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.repos import sessions
from ailab.db.tables import AgentState, ChatSession, ImportedItem, Message, PerformanceMetric

IN_CHUNK = 5000


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


async def session_owners(db: AsyncSession, session_ids: Sequence[str]) -> dict[str, str | None]:
    """``{id: owner_id}`` of the sessions among ``session_ids`` that exist."""
    owners: dict[str, str | None] = {}
    for chunk in _chunks(session_ids):
        query = select(ChatSession.id, ChatSession.owner_id).where(ChatSession.id.in_(chunk))
        owners.update({row.id: row.owner_id for row in await db.execute(query)})
    return owners


async def known_fingerprints(db: AsyncSession, fingerprints: Sequence[str]) -> set[str]:
    """Those of ``fingerprints`` recorded in imported_items."""
    known: set[str] = set()
    for chunk in _chunks(fingerprints):
        query = select(ImportedItem.fingerprint).where(ImportedItem.fingerprint.in_(chunk))
        known.update((await db.scalars(query)).all())
    return known


async def reserve_seqs(db: AsyncSession, session_id: str, count: int) -> int:
    """Reserve ``count`` message numbers at the end of an existing session; returns the first.

    The same reservation as a chat turn's (the session row stays locked until the transaction ends,
    so a concurrent turn on the same session gets numbers after ours).
    """
    conn = await db.connection()
    first = await conn.run_sync(sessions.reserve_seqs, session_id, count)
    if first is None:
        raise LookupError(f"no session {session_id!r}")
    return first


async def insert_rows(db: AsyncSession, table: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows of one table as one executemany (nothing when empty).

    A Core insert on the table, not the ORM bulk path: that one leaves None values out of each row's
    parameters and so splits the batch wherever a nullable column switches between None and a value
    (one statement per message in a v2 conversation, ~15x slower).
    """
    if rows:
        await db.execute(insert(table.__table__), list(rows))


async def insert_sessions(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert sessions (dicts of ChatSession columns)."""
    await insert_rows(db, ChatSession, rows)


async def insert_messages(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert messages (dicts of Message columns, ``seq`` included)."""
    await insert_rows(db, Message, rows)


async def insert_agent_states(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert agent states (dicts of AgentState columns)."""
    await insert_rows(db, AgentState, rows)


async def insert_metrics(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert performance metrics (dicts of PerformanceMetric columns)."""
    await insert_rows(db, PerformanceMetric, rows)


async def insert_fingerprints(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Record imported items (dicts with ``fingerprint``, ``kind``, ``created_at``)."""
    await insert_rows(db, ImportedItem, rows)


async def count_fingerprints(db: AsyncSession, kind: str) -> int:
    """How many items of ``kind`` were imported so far."""
    query = select(func.count()).select_from(ImportedItem).where(ImportedItem.kind == kind)
    return int((await db.execute(query)).scalar_one())
