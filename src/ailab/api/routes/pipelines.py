"""Pipelines and agents, configured at run time: ``/pipelines`` and ``/agents``.

Reads are open to every signed-in user; writes need the admin role. Bodies are the definitions of
``services/chat/agents/definitions.py`` (the read-only fields of a GET answer are ignored, so an object can be
fetched, edited and PUT back). Invalid definitions answer 422, a taken name or a protected built-in 409.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from ailab.api.deps import AdminUser, ServicesDep
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.pipelines import (
    AgentCreate,
    AgentIn,
    AgentList,
    AgentOut,
    PipelineCreate,
    PipelineIn,
    PipelineList,
    PipelineOut,
)
from ailab.services.chat.agents.definitions import NAME_PATTERN

router = APIRouter(tags=["pipelines"], responses=problems(*COMMON_PROBLEMS, 404, 409))

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
NewPipeline = Annotated[PipelineCreate, Body(examples=[PIPELINE_EXAMPLE])]
PipelineBody = Annotated[PipelineIn, Body(examples=[PIPELINE_EXAMPLE])]
NewAgent = Annotated[AgentCreate, Body(examples=[AGENT_EXAMPLE])]
AgentBody = Annotated[AgentIn, Body(examples=[AGENT_EXAMPLE])]


@router.get("/pipelines")
async def list_pipelines(services: ServicesDep) -> PipelineList:
    """Every pipeline ``/chat`` can use (``direct``, ``agents`` and those defined at run time)."""
    views = await services.pipelines.list_pipelines()
    return PipelineList(items=[PipelineOut.model_validate(v) for v in views])


@router.post("/pipelines", status_code=201)
async def create_pipeline(body: NewPipeline, services: ServicesDep, _: AdminUser) -> PipelineOut:
    """Define a pipeline (admin)."""
    return PipelineOut.model_validate(await services.pipelines.create_pipeline(body.definition()))


@router.get("/pipelines/{name}")
async def get_pipeline(name: Name, services: ServicesDep) -> PipelineOut:
    """One pipeline."""
    return PipelineOut.model_validate(await services.pipelines.get_pipeline(name))


@router.put("/pipelines/{name}")
async def replace_pipeline(
    name: Name, body: PipelineBody, services: ServicesDep, _: AdminUser
) -> PipelineOut:
    """Replace a pipeline's definition, ``agents`` included (admin; ``direct`` is code: 409)."""
    return PipelineOut.model_validate(await services.pipelines.replace_pipeline(name, body.definition()))


@router.delete("/pipelines/{name}", status_code=204)
async def delete_pipeline(name: Name, services: ServicesDep, _: AdminUser) -> Response:
    """Delete a pipeline (admin; the built-ins ``agents`` and ``direct``: 409)."""
    await services.pipelines.delete_pipeline(name)
    return Response(status_code=204)


@router.get("/agents")
async def list_agents(services: ServicesDep) -> AgentList:
    """Every agent definition."""
    return AgentList(items=[AgentOut.model_validate(v) for v in await services.pipelines.list_agents()])


@router.post("/agents", status_code=201)
async def create_agent(body: NewAgent, services: ServicesDep, _: AdminUser) -> AgentOut:
    """Define an agent (admin)."""
    return AgentOut.model_validate(await services.pipelines.create_agent(body.definition()))


@router.get("/agents/{name}")
async def get_agent(name: Name, services: ServicesDep) -> AgentOut:
    """One agent."""
    return AgentOut.model_validate(await services.pipelines.get_agent(name))


@router.put("/agents/{name}")
async def replace_agent(name: Name, body: AgentBody, services: ServicesDep, _: AdminUser) -> AgentOut:
    """Replace an agent's definition, built-ins included (admin)."""
    return AgentOut.model_validate(await services.pipelines.replace_agent(name, body.definition()))


@router.delete("/agents/{name}", status_code=204)
async def delete_agent(name: Name, services: ServicesDep, _: AdminUser) -> Response:
    """Delete an agent no pipeline uses (admin; built-in agents: 409)."""
    await services.pipelines.delete_agent(name)
    return Response(status_code=204)
