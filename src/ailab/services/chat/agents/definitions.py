"""Agents and pipelines as data: the models, their JSON/YAML shape and their validation.

An **agent** is a role with a system prompt and the model that plays it::

    name: Worker                       # ^[A-Za-z][A-Za-z0-9_-]{0,63}$, not "end"
    role: implementation and problem solving   # shown to the agents that route to it
    system_prompt: You are the Worker ...
    model: openai/gpt-4o-mini          # "provider/model"; null: the request's model, else the default
    temperature: 0.7                   # null: the request's, else the backend's
    max_tokens: 512                    # null: the request's; both set: the smaller wins
    answers: true                      # false: comments on others' work; only its ANSWER: part counts

A **pipeline** is a small directed graph over agents::

    name: review
    description: the Worker answers, QA checks
    entry: Worker                      # the first agent to run
    routes:                            # every agent of the pipeline, with where it may go next
      Worker: [QA]                     # one target: a fixed edge, nothing to decide
      QA: {next: [Worker, end], default: end}
    max_steps: 4                       # null: AILAB_AGENT_MAX_STEPS; never above it
    time_budget_seconds: 60            # null: AILAB_AGENT_TIME_BUDGET_SECONDS; never above it

A route written as a list takes its first entry as the default. The **default route** is where an
agent goes when its decision cannot be read or names a target it may not use (see ``routing.py``).

Validation (422, :class:`InvalidInput`): names match the pattern; ``end`` is no agent's name; the entry
and every route target are agents of the pipeline (or ``end``); every agent named exists as an agent
definition; the default is one of the allowed targets; and from every agent reachable from the entry,
``end`` can be reached, so no configuration traps a run in a cycle without an exit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ailab.errors import InvalidInput

END = "end"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/\S.*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="letters, digits, '_' or '-'; max 64")]


class AgentSpec(BaseModel):
    """One agent: a role, its system prompt and the model that plays it."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    role: str = Field("", max_length=500, description="one line, shown to agents routing to this one")
    system_prompt: str = Field(min_length=1, max_length=20_000)
    model: str | None = Field(None, pattern=MODEL_PATTERN, max_length=255)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    answers: bool = Field(
        True,
        description="its output is an answer for the user; false: a comment on others' work (CEO, QA), "
        "of which only an ANSWER: section counts",
    )

    @model_validator(mode="after")
    def _not_reserved(self) -> AgentSpec:
        if self.name.lower() == END:
            raise ValueError(f"{END!r} is reserved for the end of a pipeline")
        return self


class Route(BaseModel):
    """Where an agent may go next and where it goes when its decision is unreadable."""

    model_config = ConfigDict(extra="forbid")

    next: list[str] = Field(min_length=1, max_length=32)
    default: str

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            value = {"next": list(value)}
        if isinstance(value, dict) and "default" not in value and value.get("next"):
            value = {**value, "default": value["next"][0]}
        return value

    @model_validator(mode="after")
    def _normalise(self) -> Route:
        self.next = [END if t.lower() == END else t for t in self.next]
        self.default = END if self.default.lower() == END else self.default
        if len(set(self.next)) != len(self.next):
            raise ValueError("a target is listed twice")
        if self.default not in self.next:
            raise ValueError(f"default {self.default!r} is not one of next {self.next}")
        return self

    @property
    def is_fixed(self) -> bool:
        """One target only: the agent never decides."""
        return len(self.next) == 1


class PipelineSpec(BaseModel):
    """A graph of agents with an entry point and bounds."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: str = Field("", max_length=2_000)
    entry: Name
    routes: dict[str, Route] = Field(min_length=1, max_length=32)
    max_steps: int | None = Field(None, ge=1, le=100)
    time_budget_seconds: float | None = Field(None, gt=0, le=86_400)

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineSpec:
        problems = graph_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def agent_names(self) -> list[str]:
        """The agents of the pipeline, in the order of ``routes``."""
        return list(self.routes)


def graph_problems(spec: PipelineSpec) -> list[str]:
    """What is wrong with the shape of the graph (agent definitions are checked separately)."""
    problems: list[str] = []
    agents = set(spec.routes)
    for name in agents:
        if not _matches_name(name):
            problems.append(f"agent name {name!r} does not match {NAME_PATTERN}")
    if spec.entry not in agents:
        problems.append(f"entry {spec.entry!r} has no route (routes: {sorted(agents)})")
    for source, route in spec.routes.items():
        for target in route.next:
            if target != END and target not in agents:
                problems.append(
                    f"{source} routes to {target!r}, which is neither an agent of routes nor 'end'"
                )
    if problems:
        return problems
    reachable = _reachable(spec.routes, spec.entry)
    if END not in reachable:
        problems.append(f"no route from the entry {spec.entry!r} reaches 'end'")
        return problems
    for agent in sorted(reachable - {END}):
        if END not in _reachable(spec.routes, agent):
            problems.append(f"from {agent!r} no route reaches 'end' (a cycle without an exit)")
    return problems


def _matches_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None and name.lower() != END


def _reachable(routes: Mapping[str, Route], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in routes:
            todo.extend(routes[node].next)
    return seen


def check_agents_exist(spec: PipelineSpec, known: Iterable[str]) -> None:
    """Raise :class:`InvalidInput` if the pipeline uses an agent with no definition."""
    missing = sorted(set(spec.routes) - set(known))
    if missing:
        raise InvalidInput(f"pipeline {spec.name!r} uses unknown agents: {', '.join(missing)}")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "body"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_agent(data: Any) -> AgentSpec:
    """An :class:`AgentSpec` from JSON/YAML data; :class:`InvalidInput` with the reasons otherwise."""
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid agent: {_validation_message(exc)}") from None


def parse_pipeline(data: Any) -> PipelineSpec:
    """A :class:`PipelineSpec` from JSON/YAML data; :class:`InvalidInput` with the reasons otherwise."""
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid pipeline: {_validation_message(exc)}") from None
