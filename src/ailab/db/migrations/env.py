"""Alembic environment: runs the migrations on the async engine of AI-Lab, online only."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ailab.db.engine import create_engine
from ailab.db.migrate import PG_MIGRATION_LOCK_ID
from ailab.db.tables import Base

target_metadata = Base.metadata


def _url() -> str:
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        from ailab.config import get_settings

        url = get_settings().sqlalchemy_url
    return str(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Serialise concurrent upgrades; released when this transaction ends.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK_ID})"))
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("AI-Lab migrations run online only: use `ai-lab db upgrade`")
asyncio.run(_run_async())
