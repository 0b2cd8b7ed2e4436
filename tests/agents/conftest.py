"""Fixtures of the agent tests: a real database (SQLite and PostgreSQL) with one session, and helpers to
build a pipeline on the scripted backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import pytest

from ailab.db.engine import Database
from ailab.db.repos import sessions as session_repo
from ailab.db.tables import AgentState
from ailab.services.chat.agents.builtin import BUILTIN_AGENTS, BUILTIN_PIPELINE
from ailab.services.chat.agents.catalog import DatabaseStepStore
from ailab.services.chat.agents.definitions import AgentSpec, PipelineSpec
from ailab.services.chat.agents.engine import AgentPipeline, Bounds
from ailab.services.chat.turns import Final, PipelineEvent, Turn
from tests.agents.scripted import ScriptedProvider, registry


@dataclass
class Store:
    """A migrated database holding one chat session."""

    db: Database
    session_id: str

    async def states(self) -> list[AgentState]:
        async with self.db.read() as session:
            return list(await session_repo.list_agent_states(session, self.session_id))

    def turn(self, message: str = "What is 6 x 7?", **fields: object) -> Turn:
        return Turn(
            session_id=self.session_id,
            owner_id=None,
            request_id=uuid.uuid4().hex,
            message=message,
            **fields,  # type: ignore[arg-type]
        )


@pytest.fixture
async def store(any_database_url: str) -> AsyncIterator[Store]:
    db = Database(any_database_url)
    session_id = str(uuid.uuid4())
    async with db.write() as session:
        await session_repo.create_session(session, session_id=session_id, owner_id=None, title="agents")
    try:
        yield Store(db, session_id)
    finally:
        await db.close()


def build(
    provider: ScriptedProvider,
    store: Store,
    *,
    spec: PipelineSpec = BUILTIN_PIPELINE,
    agents: Mapping[str, AgentSpec] | None = None,
    max_steps: int = 6,
    budget: float = 60.0,
) -> AgentPipeline:
    """A pipeline on the scripted backend that stores its steps in ``store``."""
    return AgentPipeline(
        spec,
        agents if agents is not None else {a.name: a for a in BUILTIN_AGENTS},
        registry(provider),
        DatabaseStepStore(store.db),
        Bounds(max_steps=max_steps, time_budget_seconds=budget),
    )


async def collect(pipeline: AgentPipeline, turn: Turn) -> list[PipelineEvent]:
    """Every event of a run; checks that exactly one Final ends it."""
    events = [event async for event in pipeline.run(turn)]
    assert [isinstance(e, Final) for e in events].count(True) == 1
    assert isinstance(events[-1], Final)
    return events
