"""Model aliases, configured at run time: ``GET /models/aliases``, ``PUT|DELETE /models/aliases/{name}``.

Admins only (the deployments name internal hosts). A change is written to the models file
(``AILAB_MODELS_FILE``) atomically and takes effect here at once, and on every replica that shares the
file within a second. An alias naming an unknown provider, or taking a provider's name, is 422; a models
file that is broken on disk is 409 (fix it first: the API does not overwrite it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from ailab.api.deps import AdminUser, ServicesDep
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.models import AliasIn, AliasList, AliasOut
from ailab.errors import InvalidInput
from ailab.services.routing.config import NAME_PATTERN

router = APIRouter(prefix="/models", tags=["models"], responses=problems(*COMMON_PROBLEMS, 404, 409))

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="the alias, a model id of its own")]
ALIAS_EXAMPLE = {
    "deployments": [
        "openai-compat/qwen2.5-7b",
        {"model": "ollama/llama3", "base_url": "http://gpu-2:11434", "weight": 2},
    ],
    "fallbacks": ["local/smollm2-135m-instruct"],
    "cooldown": {"failures": 3, "seconds": 30},
}
AliasBody = Annotated[AliasIn, Body(examples=[ALIAS_EXAMPLE])]


@router.get("/aliases")
async def list_aliases(services: ServicesDep, _: AdminUser) -> AliasList:
    """Every model alias, and how its deployments are doing in this process (admin)."""
    routing = services.routing
    return AliasList(
        items=[AliasOut.model_validate(view) for view in routing.views()], file=str(routing.file.path)
    )


@router.put("/aliases/{name}")
async def put_alias(name: Name, body: AliasBody, services: ServicesDep, _: AdminUser) -> AliasOut:
    """Create or replace an alias (admin): its deployments, fallbacks and routing rules."""
    if body.name is not None and body.name != name:
        raise InvalidInput(f"the body names {body.name!r}, the path {name!r}")
    return AliasOut.model_validate(await services.routing.put(body.spec(name)))


@router.delete("/aliases/{name}", status_code=204)
async def delete_alias(name: Name, services: ServicesDep, _: AdminUser) -> Response:
    """Delete an alias (admin)."""
    await services.routing.delete(name)
    return Response(status_code=204)
