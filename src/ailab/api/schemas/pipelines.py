"""``/pipelines`` and ``/agents``: definitions as data (see ``services/chat/agents/definitions.py``).

A request body is a definition; the read-only fields of a GET answer (``builtin``, ``kind``, ``editable``,
timestamps) are accepted and ignored, so an object can be fetched, edited and PUT back. On PUT the name
may be left out: it is the path's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, model_validator

from ailab.api.schemas.common import Timestamp
from ailab.services.chat.agents.catalog import AgentView, PipelineView
from ailab.services.chat.agents.definitions import END, AgentSpec, Name, PipelineSpec, Route


class _ReadOnly(BaseModel):
    """The fields of a GET answer that a body may carry back; ignored."""

    builtin: bool | None = None
    kind: str | None = None
    editable: bool | None = None
    created_at: str | None = None
    updated_at: str | None = None


class AgentCreate(_ReadOnly, AgentSpec):
    """A new agent's definition."""

    def definition(self) -> dict[str, Any]:
        """The fields given, read-only ones left out."""
        return self.model_dump(exclude_unset=True, exclude=set(_ReadOnly.model_fields))


class AgentIn(_ReadOnly, AgentSpec):
    """An agent's definition on PUT: ``name`` may be left out (it is the path's)."""

    name: Name | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _not_reserved(self) -> AgentIn:  # replaces AgentSpec's: the name may be missing (PUT)
        if self.name is not None and self.name.lower() == END:
            raise ValueError(f"{END!r} is reserved for the end of a pipeline")
        return self

    def definition(self) -> dict[str, Any]:
        """The fields given, read-only ones left out."""
        return self.model_dump(exclude_unset=True, exclude=set(_ReadOnly.model_fields))


class PipelineCreate(_ReadOnly, PipelineSpec):
    """A new pipeline's definition."""

    def definition(self) -> dict[str, Any]:
        """The fields given, read-only ones left out (routes in their full form)."""
        return self.model_dump(mode="json", exclude_unset=True, exclude=set(_ReadOnly.model_fields))


class PipelineIn(_ReadOnly, PipelineSpec):
    """A pipeline's definition on PUT: ``name`` may be left out (it is the path's)."""

    name: Name | None = None  # type: ignore[assignment]

    def definition(self) -> dict[str, Any]:
        """The fields given, read-only ones left out (routes in their full form)."""
        return self.model_dump(mode="json", exclude_unset=True, exclude=set(_ReadOnly.model_fields))


class AgentOut(AgentSpec):
    """An agent: its definition, whether it is built in (editable, not deletable), when it was stored."""

    builtin: bool
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_view(cls, value: Any) -> Any:
        if isinstance(value, AgentView):
            stamps = {"created_at": value.created_at, "updated_at": value.updated_at}
            return {**value.spec.model_dump(), "builtin": value.builtin, **stamps}
        return value


class AgentList(BaseModel):
    items: list[AgentOut]


class PipelineOut(BaseModel):
    """A pipeline: ``agents`` kind (a graph of agents) or ``direct`` (one model, no agents: code)."""

    name: str
    description: str
    entry: str | None
    routes: dict[str, Route]
    max_steps: int | None
    time_budget_seconds: float | None
    kind: Literal["agents", "direct"]
    builtin: bool
    editable: bool
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_view(cls, value: Any) -> Any:
        if not isinstance(value, PipelineView):
            return value
        spec = value.spec
        graph: dict[str, Any] = (
            spec.model_dump(exclude={"name", "description"})
            if spec is not None
            else {"entry": None, "routes": {}, "max_steps": 1, "time_budget_seconds": None}
        )
        stamps = {"created_at": value.created_at, "updated_at": value.updated_at}
        flags = {"kind": value.kind, "builtin": value.builtin, "editable": value.editable}
        return {"name": value.name, "description": value.description, **graph, **flags, **stamps}


class PipelineList(BaseModel):
    items: list[PipelineOut]
