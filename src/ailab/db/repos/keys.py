"""Queries on the stored API keys (``api_keys``): one row per service, the secret only as ciphertext."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.tables import ApiKey, utcnow


async def lock_for_write(db: AsyncSession) -> None:
    """Serialise writers of ``api_keys`` for the rest of the transaction.

    SQLite write transactions already hold the database's write lock (``BEGIN IMMEDIATE``); on
    PostgreSQL a table lock that conflicts with itself and with inserts does the same, so a key set
    while ``keys rotate`` runs is either re-encrypted by it or encrypted under the new master key.
    """
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE"))


async def get_key(db: AsyncSession, service: str) -> ApiKey | None:
    """The row of ``service``."""
    return await db.get(ApiKey, service)


async def list_keys(db: AsyncSession) -> Sequence[ApiKey]:
    """Every stored key, by service name."""
    return (await db.scalars(select(ApiKey).order_by(ApiKey.service))).all()


async def first_key(db: AsyncSession, excluding: str | None = None) -> ApiKey | None:
    """Any one stored key, optionally not that of service ``excluding`` (None when there is none)."""
    query = select(ApiKey).order_by(ApiKey.service).limit(1)
    if excluding is not None:
        query = query.where(ApiKey.service != excluding)
    return (await db.scalars(query)).first()


async def upsert_key(db: AsyncSession, service: str, ciphertext: str, config: dict[str, Any]) -> ApiKey:
    """Store the key of ``service``: a new row, or a new secret and config for the existing one.

    A replaced key forgets the last test result, which was about the old key.
    """
    now = utcnow()
    row = await db.get(ApiKey, service, with_for_update=True)
    if row is None:
        row = ApiKey(service=service, ciphertext=ciphertext, config=config, created_at=now, updated_at=now)
        db.add(row)
    else:
        row.ciphertext, row.config, row.updated_at = ciphertext, config, now
        row.last_tested_at, row.last_test_result = None, None
    await db.flush()
    return row


async def set_ciphertext(db: AsyncSession, service: str, ciphertext: str) -> None:
    """Replace the ciphertext only (rotation: same secret, new master key; timestamps unchanged)."""
    await db.execute(update(ApiKey).where(ApiKey.service == service).values(ciphertext=ciphertext))


async def record_test(db: AsyncSession, service: str, ciphertext: str, result: str, at: dt.datetime) -> None:
    """Remember the outcome of a key test, unless the key was replaced meanwhile."""
    await db.execute(
        update(ApiKey)
        .where(ApiKey.service == service, ApiKey.ciphertext == ciphertext)
        .values(last_tested_at=at, last_test_result=result)
    )


async def delete_key(db: AsyncSession, service: str) -> bool:
    """Delete the row of ``service``; whether there was one."""
    result = await db.execute(delete(ApiKey).where(ApiKey.service == service))
    return bool(getattr(result, "rowcount", 0))
