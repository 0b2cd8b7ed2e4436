"""Pipelines and agents, configured at run time: ``/pipelines`` and ``/agents``.

Reads are open to every signed-in user; writes need the admin role. Bodies are the definitions of
``services/agents/definitions.py`` (the read-only fields of a GET answer are ignored, so an object can be
fetched, edited and PUT back). Invalid definitions answer 422, a taken name or a protected built-in 409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response

from ailab.api.deps import AdminUser, ServicesDep
from ailab.services.agents.definitions import NAME_PATTERN

router = APIRouter(tags=["pipelines"])

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="a pipeline or agent name")]

PIPELINE_EXAMPLE = {
    "name": "review",
    "description": "the Worker answers, QA checks it",
    "entry": "Worker",
    "routes": {"Worker": ["QA"], "QA": {"next": ["Worker", "end"], "default": "end"}},
    "max_steps": 4,
    "time_budget_seconds": 120,
}
AGENT_EXAMPLE = {
    "name": "Critic",
    "role": "points out weaknesses in the work so far",
    "system_prompt": "You are a sharp critic. List the three biggest weaknesses of the work so far.",
    "model": None,
    "temperature": 0.2,
    "max_tokens": 256,
    "answers": False,
}
PipelineBody = Annotated[dict[str, Any], Body(examples=[PIPELINE_EXAMPLE])]
AgentBody = Annotated[dict[str, Any], Body(examples=[AGENT_EXAMPLE])]


@router.get("/pipelines")
async def list_pipelines(services: ServicesDep) -> dict[str, Any]:
    """Every pipeline ``/chat`` can use (``direct``, ``agents`` and those defined at run time)."""
    return {"items": await services.pipelines.list_pipelines()}


@router.post("/pipelines", status_code=201)
async def create_pipeline(body: PipelineBody, services: ServicesDep, _: AdminUser) -> dict[str, Any]:
    """Define a pipeline (admin)."""
    return await services.pipelines.create_pipeline(body)


@router.get("/pipelines/{name}")
async def get_pipeline(name: Name, services: ServicesDep) -> dict[str, Any]:
    """One pipeline."""
    return await services.pipelines.get_pipeline(name)


@router.put("/pipelines/{name}")
async def replace_pipeline(
    name: Name, body: PipelineBody, services: ServicesDep, _: AdminUser
) -> dict[str, Any]:
    """Replace a pipeline's definition, ``agents`` included (admin; ``direct`` is code: 409)."""
    return await services.pipelines.replace_pipeline(name, body)


@router.delete("/pipelines/{name}", status_code=204)
async def delete_pipeline(name: Name, services: ServicesDep, _: AdminUser) -> Response:
    """Delete a pipeline (admin; the built-ins ``agents`` and ``direct``: 409)."""
    await services.pipelines.delete_pipeline(name)
    return Response(status_code=204)


@router.get("/agents")
async def list_agents(services: ServicesDep) -> dict[str, Any]:
    """Every agent definition."""
    return {"items": await services.pipelines.list_agents()}


@router.post("/agents", status_code=201)
async def create_agent(body: AgentBody, services: ServicesDep, _: AdminUser) -> dict[str, Any]:
    """Define an agent (admin)."""
    return await services.pipelines.create_agent(body)


@router.get("/agents/{name}")
async def get_agent(name: Name, services: ServicesDep) -> dict[str, Any]:
    """One agent."""
    return await services.pipelines.get_agent(name)


@router.put("/agents/{name}")
async def replace_agent(name: Name, body: AgentBody, services: ServicesDep, _: AdminUser) -> dict[str, Any]:
    """Replace an agent's definition, built-ins included (admin)."""
    return await services.pipelines.replace_agent(name, body)


@router.delete("/agents/{name}", status_code=204)
async def delete_agent(name: Name, services: ServicesDep, _: AdminUser) -> Response:
    """Delete an agent no pipeline uses (admin; built-in agents: 409)."""
    await services.pipelines.delete_agent(name)
    return Response(status_code=204)
