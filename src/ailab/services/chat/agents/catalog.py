"""Where pipelines and agents live: the database, seeded once, and the lookup ``/chat`` resolves through.

Storage: one row per agent in ``agent_definitions`` and per pipeline in ``pipelines``, the validated
definition (``definitions.py``) as JSON in ``config``. ``direct`` is not stored: it is code (the chat
service's one-model pipeline) and is served by the static lookup this catalog wraps.

Seeding, at the first start (no pipeline stored yet): the built-ins (``builtin.py``), overridden and
extended by ``<data dir>/pipelines.yaml`` when that file exists::

    agents:                 # a list of agent definitions, or a mapping name -> definition
      - name: Coder
        role: writes code
        system_prompt: You write small, correct Python functions.
        model: local/smollm2-135m-instruct
    pipelines:
      - name: code-review
        entry: Coder
        routes: {Coder: [Reviewer], Reviewer: {next: [Coder, end], default: end}}

A malformed file stops the start with a :class:`ConfigError` naming it. Several workers may seed at
once: SQLite serialises the writers, and on PostgreSQL the loser's unique-key conflict is ignored.

Rules of the API: names are unique; a pipeline may only use defined agents; an agent used by a pipeline
cannot be deleted (409, naming the pipelines); the built-ins (``agents``, CEO, Worker, QA, Reflection)
may be edited but not deleted (409); ``direct`` can be neither (409).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from sqlalchemy.exc import IntegrityError

from ailab.config import ConfigError, Settings
from ailab.db.engine import Database
from ailab.db.repos import agents as repo
from ailab.db.repos import sessions as session_repo
from ailab.db.tables import AgentDefinition, Pipeline
from ailab.errors import Conflict, InvalidInput, NotFound
from ailab.providers.registry import ProviderRegistry
from ailab.services.chat.agents.builtin import (
    BUILTIN_AGENT_NAMES,
    BUILTIN_AGENTS,
    BUILTIN_PIPELINE,
    BUILTIN_PIPELINE_NAMES,
    DIRECT_PIPELINE,
    SUPERSEDED_DEFAULTS,
)
from ailab.services.chat.agents.definitions import (
    AgentSpec,
    PipelineSpec,
    check_agents_exist,
    parse_agent,
    parse_pipeline,
)
from ailab.services.chat.agents.engine import AgentPipeline, Bounds, StepRecord
from ailab.services.chat.turns import ChatPipeline, PipelineLookup

SEED_FILE = "pipelines.yaml"
READ_ONLY_FIELDS = ("builtin", "kind", "editable", "created_at", "updated_at")
DIRECT_DESCRIPTION = "One model, no agents: the message and the history go straight to the model."
log = logging.getLogger("ailab.agents")


class DatabaseStepStore:
    """Stores each agent step in ``agent_states``, one write transaction per step."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, record: StepRecord) -> None:
        """Insert one step; committed before the run goes on."""
        fields = {
            "request_id": record.request_id,
            "run_id": record.run_id,
            "step": record.step,
            "agent": record.agent,
            "input_summary": record.input_summary,
            "output": record.output,
            "thought_process": record.thought_process,
            "decision": record.decision,
            "routed_by": record.routed_by,
            "model": record.model,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "ttft_ms": record.ttft_ms,
            "duration_ms": record.duration_ms,
            "status": record.status,
        }
        if record.session_id is None:
            return
        async with self._db.write() as session:
            await session_repo.add_agent_state(session, record.session_id, **fields)


def config_digest(config: Any) -> str:
    """sha256 of a definition's canonical JSON (to recognise an unedited earlier default)."""
    return hashlib.sha256(orjson.dumps(config, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent as the API shows it: its definition, whether it is built in, when it was stored."""

    spec: AgentSpec
    builtin: bool
    created_at: dt.datetime | None
    updated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class PipelineView:
    """A pipeline as the API shows it; ``direct`` (code, not data) has no spec."""

    name: str
    description: str
    spec: PipelineSpec | None
    kind: Literal["agents", "direct"]
    builtin: bool
    editable: bool
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


def agent_view(spec: AgentSpec, row: AgentDefinition | None = None) -> AgentView:
    """The view of a stored (or built-in) agent."""
    stamps = (row.created_at, row.updated_at) if row is not None else (None, None)
    return AgentView(spec, spec.name in BUILTIN_AGENT_NAMES, *stamps)


def pipeline_view(spec: PipelineSpec, row: Pipeline | None = None) -> PipelineView:
    """The view of a stored pipeline."""
    stamps = (row.created_at, row.updated_at) if row is not None else (None, None)
    builtin = spec.name in BUILTIN_PIPELINE_NAMES
    return PipelineView(spec.name, spec.description, spec, "agents", builtin, True, *stamps)


DIRECT_VIEW = PipelineView(DIRECT_PIPELINE, DIRECT_DESCRIPTION, None, "direct", builtin=True, editable=False)


def _body(data: Any, name: str | None) -> dict[str, Any]:
    """A request body as a definition: read-only fields dropped, the name from the path."""
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    body = {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
    if body.get("name") is None:
        body.pop("name", None)  # left out, or null: the path's
    if name is not None and body.setdefault("name", name) != name:
        raise Conflict(f"the body's name {body['name']!r} is not {name!r}: renaming is not supported")
    return body


def _entries(section: Any, what: str, path: Path) -> list[dict[str, Any]]:
    if section is None:
        return []
    if isinstance(section, dict):
        section = [{"name": key, **(value or {})} for key, value in section.items()]
    if not isinstance(section, list) or not all(isinstance(item, dict) for item in section):
        raise ConfigError(f"{path}: '{what}' must be a list of mappings or a mapping of names")
    return section


def load_seed(path: Path) -> tuple[list[AgentSpec], list[PipelineSpec]]:
    """The agents and pipelines of a seed file, validated together with the built-ins (blocking I/O)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the pipelines seed: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"agents", "pipelines"}:
        raise ConfigError(f"{path}: expected a mapping with the keys 'agents' and 'pipelines'")
    try:
        agents = [parse_agent(item) for item in _entries(data.get("agents"), "agents", path)]
        pipelines = [parse_pipeline(item) for item in _entries(data.get("pipelines"), "pipelines", path)]
        known = {a.name for a in agents} | BUILTIN_AGENT_NAMES
        for pipeline in pipelines:
            if pipeline.name == DIRECT_PIPELINE:
                raise InvalidInput(f"{DIRECT_PIPELINE!r} is built in and cannot be defined")
            check_agents_exist(pipeline, known)
    except InvalidInput as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    return agents, pipelines


class AgentCatalog:
    """Agents and pipelines in the database, and the :class:`PipelineLookup` for ``/chat``."""

    def __init__(
        self,
        db: Database,
        providers: ProviderRegistry,
        settings: Settings,
        static: PipelineLookup | None = None,
    ) -> None:
        self._db = db
        self._providers = providers
        self._settings = settings
        self._static = static
        self.steps = DatabaseStepStore(db)

    # Seeding

    async def seed(self) -> str:
        """Fill empty tables from the seed file or the built-ins; says which ("already seeded" if none).

        Once seeded, built-in agents that still hold an earlier release's default are updated instead.
        """
        async with self._db.read() as session:
            seeded = await repo.count_pipelines(session) > 0
            stale = [
                row.name
                for row in await repo.get_agents(session, sorted(BUILTIN_AGENT_NAMES))
                if config_digest(row.config) in SUPERSEDED_DEFAULTS
            ]
        if seeded:  # the file is only read at the first start
            if stale:
                await self._refresh(stale)
            return "already seeded"
        path = self._settings.data_dir / SEED_FILE
        agents: dict[str, AgentSpec] = {a.name: a for a in BUILTIN_AGENTS}
        pipelines: dict[str, PipelineSpec] = {BUILTIN_PIPELINE.name: BUILTIN_PIPELINE}
        source = "built-ins"
        if await asyncio.to_thread(path.is_file):
            extra_agents, extra_pipelines = await asyncio.to_thread(load_seed, path)
            agents.update((a.name, a) for a in extra_agents)
            pipelines.update((p.name, p) for p in extra_pipelines)
            source = str(path)
        try:
            async with self._db.write() as session:
                if await repo.count_pipelines(session) > 0:
                    return "already seeded"
                for agent in agents.values():
                    await repo.put_agent(session, agent.name, agent.model_dump(mode="json"))
                for pipeline in pipelines.values():
                    await repo.put_pipeline(session, pipeline.name, pipeline.model_dump(mode="json"))
        except IntegrityError:
            return "already seeded"  # another worker seeded at the same moment
        log.info("seeded %d agents and %d pipelines from %s", len(agents), len(pipelines), source)
        return source

    async def _refresh(self, names: list[str]) -> None:
        builtins = {a.name: a for a in BUILTIN_AGENTS}
        async with self._db.write() as session:
            for row in await repo.get_agents(session, names):
                if config_digest(row.config) in SUPERSEDED_DEFAULTS:  # unless edited meanwhile
                    await repo.put_agent(session, row.name, builtins[row.name].model_dump(mode="json"))
        log.info("updated the built-in agents %s to this release's defaults", ", ".join(names))

    # Agents

    async def list_agents(self) -> list[AgentView]:
        """Every agent."""
        async with self._db.read() as session:
            rows = await repo.list_agents(session)
        return [agent_view(AgentSpec.model_validate(r.config), r) for r in rows]

    async def get_agent(self, name: str) -> AgentView:
        """One agent; :class:`NotFound` if unknown."""
        async with self._db.read() as session:
            row = await repo.get_agent(session, name)
        if row is None:
            raise NotFound(f"no agent {name!r}")
        return agent_view(AgentSpec.model_validate(row.config), row)

    async def create_agent(self, data: Any) -> AgentView:
        """Add an agent; :class:`Conflict` if the name is taken."""
        spec = parse_agent(_body(data, None))
        async with self._db.write() as session:
            if await repo.get_agent(session, spec.name) is not None:
                raise Conflict(f"agent {spec.name!r} exists already: use PUT /agents/{spec.name}")
            row = await repo.put_agent(session, spec.name, spec.model_dump(mode="json"))
            return agent_view(spec, row)

    async def replace_agent(self, name: str, data: Any) -> AgentView:
        """Replace an agent's definition (built-ins included); :class:`NotFound` if unknown."""
        spec = parse_agent(_body(data, name))
        async with self._db.write() as session:
            if await repo.get_agent(session, name) is None:
                raise NotFound(f"no agent {name!r}: create it with POST /agents")
            row = await repo.put_agent(session, name, spec.model_dump(mode="json"))
            return agent_view(spec, row)

    async def delete_agent(self, name: str) -> None:
        """Delete an agent that no pipeline uses and that is not built in."""
        if name in BUILTIN_AGENT_NAMES:
            raise Conflict(f"{name!r} is a built-in agent: it can be edited but not deleted")
        async with self._db.write() as session:
            if await repo.get_agent(session, name) is None:
                raise NotFound(f"no agent {name!r}")
            users = [
                p.name for p in await repo.list_pipelines(session) if name in (p.config.get("routes") or {})
            ]
            if users:
                raise Conflict(f"agent {name!r} is used by the pipelines {', '.join(users)}")
            await repo.delete_agent(session, name)

    # Pipelines

    async def list_pipelines(self) -> list[PipelineView]:
        """Every pipeline, ``direct`` first."""
        async with self._db.read() as session:
            rows = await repo.list_pipelines(session)
        listed = [DIRECT_VIEW] if await self._has_direct() else []
        return listed + [pipeline_view(PipelineSpec.model_validate(r.config), r) for r in rows]

    async def get_pipeline(self, name: str) -> PipelineView:
        """One pipeline; :class:`NotFound` if unknown."""
        if name == DIRECT_PIPELINE and await self._has_direct():
            return DIRECT_VIEW
        async with self._db.read() as session:
            row = await repo.get_pipeline(session, name)
        if row is None:
            raise NotFound(f"no pipeline {name!r}")
        return pipeline_view(PipelineSpec.model_validate(row.config), row)

    async def create_pipeline(self, data: Any) -> PipelineView:
        """Add a pipeline; :class:`Conflict` if the name is taken, :class:`InvalidInput` if invalid."""
        spec = parse_pipeline(_body(data, None))
        if spec.name == DIRECT_PIPELINE:
            raise Conflict(f"{DIRECT_PIPELINE!r} is built in")
        async with self._db.write() as session:
            if await repo.get_pipeline(session, spec.name) is not None:
                raise Conflict(f"pipeline {spec.name!r} exists already: use PUT /pipelines/{spec.name}")
            await self._check_agents(session, spec)
            row = await repo.put_pipeline(session, spec.name, spec.model_dump(mode="json"))
            return pipeline_view(spec, row)

    async def replace_pipeline(self, name: str, data: Any) -> PipelineView:
        """Replace a pipeline's definition (``agents`` included, not ``direct``)."""
        if name == DIRECT_PIPELINE:
            raise Conflict(f"{DIRECT_PIPELINE!r} is built in code and cannot be changed")
        spec = parse_pipeline(_body(data, name))
        async with self._db.write() as session:
            if await repo.get_pipeline(session, name) is None:
                raise NotFound(f"no pipeline {name!r}: create it with POST /pipelines")
            await self._check_agents(session, spec)
            row = await repo.put_pipeline(session, name, spec.model_dump(mode="json"))
            return pipeline_view(spec, row)

    async def delete_pipeline(self, name: str) -> None:
        """Delete a pipeline that is not built in."""
        if name in BUILTIN_PIPELINE_NAMES:
            raise Conflict(f"{name!r} is a built-in pipeline and cannot be deleted")
        async with self._db.write() as session:
            if not await repo.delete_pipeline(session, name):
                raise NotFound(f"no pipeline {name!r}")

    @staticmethod
    async def _check_agents(session: Any, spec: PipelineSpec) -> None:
        rows = await repo.get_agents(session, spec.agent_names)
        check_agents_exist(spec, [r.name for r in rows])

    # PipelineLookup

    async def _has_direct(self) -> bool:
        return self._static is not None and DIRECT_PIPELINE in await self._static.names()

    async def names(self) -> list[str]:
        """Every pipeline ``/chat`` can use now."""
        static = await self._static.names() if self._static is not None else []
        async with self._db.read() as session:
            stored = [r.name for r in await repo.list_pipelines(session)]
        return sorted(set(static) | set(stored))

    async def resolve(self, name: str) -> ChatPipeline:
        """The pipeline called ``name``: a static one (``direct``) or a stored graph of agents."""
        # Static names are reserved (they cannot be stored), so they need no database read.
        if self._static is not None and name in await self._static.names():
            return await self._static.resolve(name)
        async with self._db.read() as session:
            row = await repo.get_pipeline(session, name)
            if row is not None:
                spec = PipelineSpec.model_validate(row.config)
                agent_rows = await repo.get_agents(session, spec.agent_names)
        if row is not None:
            check_agents_exist(spec, [r.name for r in agent_rows])
            agents = {r.name: AgentSpec.model_validate(r.config) for r in agent_rows}
            return AgentPipeline(spec, agents, self._providers, self.steps, self.bounds(spec))
        raise NotFound(f"unknown pipeline {name!r}; known: {', '.join(await self.names())}")

    def bounds(self, spec: PipelineSpec) -> Bounds:
        """The pipeline's bounds, never above the server's settings."""
        max_steps = self._settings.agent_max_steps
        budget = self._settings.agent_time_budget_seconds
        return Bounds(
            max_steps=min(spec.max_steps or max_steps, max_steps),
            time_budget_seconds=min(spec.time_budget_seconds or budget, budget),
        )
