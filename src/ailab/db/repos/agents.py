"""Queries on agent definitions and pipelines (tables ``agent_definitions`` and ``pipelines``).

Both keep their whole definition in one JSON ``config`` column keyed by ``name``; validation happens in
``services/chat/agents/definitions.py`` before anything is written. Agent steps (``agent_states``) are in
``repos/sessions.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.tables import AgentDefinition, Pipeline, utcnow


async def list_agents(db: AsyncSession) -> Sequence[AgentDefinition]:
    """Every agent definition, by name."""
    return (await db.scalars(select(AgentDefinition).order_by(AgentDefinition.name))).all()


async def get_agent(db: AsyncSession, name: str) -> AgentDefinition | None:
    """One agent definition."""
    return await db.get(AgentDefinition, name)


async def get_agents(db: AsyncSession, names: Sequence[str]) -> Sequence[AgentDefinition]:
    """The agent definitions among ``names`` that exist."""
    query = select(AgentDefinition).where(AgentDefinition.name.in_(list(names)))
    return (await db.scalars(query)).all()


async def put_agent(db: AsyncSession, name: str, config: dict[str, Any]) -> AgentDefinition:
    """Create or replace an agent definition."""
    return await _put(db, AgentDefinition, name, config)


async def delete_agent(db: AsyncSession, name: str) -> bool:
    """Delete an agent definition; whether it existed."""
    return await _delete(db, AgentDefinition, name)


async def list_pipelines(db: AsyncSession) -> Sequence[Pipeline]:
    """Every stored pipeline, by name."""
    return (await db.scalars(select(Pipeline).order_by(Pipeline.name))).all()


async def get_pipeline(db: AsyncSession, name: str) -> Pipeline | None:
    """One stored pipeline."""
    return await db.get(Pipeline, name)


async def put_pipeline(db: AsyncSession, name: str, config: dict[str, Any]) -> Pipeline:
    """Create or replace a pipeline."""
    return await _put(db, Pipeline, name, config)


async def delete_pipeline(db: AsyncSession, name: str) -> bool:
    """Delete a pipeline; whether it existed."""
    return await _delete(db, Pipeline, name)


async def count_pipelines(db: AsyncSession) -> int:
    """How many pipelines are stored (0: never seeded)."""
    return int((await db.execute(select(func.count()).select_from(Pipeline))).scalar_one())


Definition = TypeVar("Definition", AgentDefinition, Pipeline)


async def _put(db: AsyncSession, table: type[Definition], name: str, config: dict[str, Any]) -> Definition:
    """Create or replace the named row of a ``name`` + ``config`` table."""
    row = await db.get(table, name)
    now = utcnow()
    if row is None:
        row = table(name=name, config=config, created_at=now, updated_at=now)
        db.add(row)
    else:
        row.config = config
        row.updated_at = now
    await db.flush()
    return row


async def _delete(db: AsyncSession, table: type[AgentDefinition | Pipeline], name: str) -> bool:
    """Delete the named row; whether it existed."""
    result = await db.execute(delete(table).where(table.name == name))
    return bool(getattr(result, "rowcount", 0))
