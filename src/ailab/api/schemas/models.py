"""``/models/aliases``: model aliases as the models file holds them (``services/routing/config.py``), with
their deployments' state in this process.

A PUT body is an alias's settings; the read-only ``status`` of a GET answer is accepted and ignored, so
an alias can be fetched, edited and PUT back. The name is the path's (a ``name`` in the body must match).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, Field, model_validator

from ailab.services.routing.config import AliasSettings, AliasSpec
from ailab.services.routing.service import AliasView


class DeploymentStatusOut(BaseModel):
    """How one deployment is doing in the process that answered."""

    deployment: str = Field(description="provider/model, with @base_url for another host")
    available: bool = Field(description="false while it cools down after failures")
    cooling_down_seconds: float
    in_flight: int = Field(description="its requests in progress in this process")


class AliasIn(AliasSettings):
    """An alias's deployments, fallbacks and routing rules (deployments may be plain model ids)."""

    name: str | None = Field(None, description="the path's name, if given")
    status: list[DeploymentStatusOut] | None = Field(None, description="read-only; ignored")

    def spec(self, name: str) -> AliasSpec:
        """The alias ``name`` with these settings."""
        return AliasSpec(name=name, **self.model_dump(exclude={"name", "status"}))


class AliasOut(AliasSpec):
    """An alias as stored, and how its deployments are doing."""

    status: list[DeploymentStatusOut]

    @model_validator(mode="before")
    @classmethod
    def _from_view(cls, value: Any) -> Any:
        if isinstance(value, AliasView):
            return {**value.spec.model_dump(), "status": [asdict(s) for s in value.status]}
        return value


class AliasList(BaseModel):
    """Every alias, in the file's order."""

    items: list[AliasOut]
    file: str = Field(description="the models file (AILAB_MODELS_FILE) they come from")
