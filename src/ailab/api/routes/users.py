"""User management for admins: ``GET/POST /users``, ``PATCH/DELETE /users/{name}``.

Every route here needs the ``admin`` role (403 otherwise). Changes take effect at once: a disabled or
deleted user, or one whose password changed, is refused on the next request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from ailab.api.deps import ServicesDep, require_admin
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.users import UserCreate, UserList, UserOut, UserUpdate

router = APIRouter(
    tags=["users"], dependencies=[Depends(require_admin)], responses=problems(*COMMON_PROBLEMS, 404, 409)
)

UserName = Annotated[str, Path(min_length=1, max_length=64, description="a user name")]


@router.get("/users")
async def list_users(services: ServicesDep) -> UserList:
    """Every user, by name."""
    return UserList(items=[UserOut.model_validate(u) for u in await services.auth.list_users()])


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, services: ServicesDep) -> UserOut:
    """Create a user (409 when the name is taken)."""
    return UserOut.model_validate(await services.auth.create_user(body.username, body.password, body.role))


@router.patch("/users/{name}")
async def update_user(name: UserName, body: UserUpdate, services: ServicesDep) -> UserOut:
    """Disable or enable a user, change the role or set a new password.

    409 when it would leave no active admin.
    """
    row = await services.auth.update_user(
        name, disabled=body.disabled, role=body.role, password=body.password
    )
    return UserOut.model_validate(row)


@router.delete("/users/{name}", status_code=204)
async def delete_user(name: UserName, services: ServicesDep) -> Response:
    """Delete a user with their sessions, tokens and files (409 for the last active admin)."""
    owner = await services.auth.get_user(name)
    file_ids = await services.files.ids_of(owner.id)
    await services.auth.delete_user(name)  # the rows of their files go with them (foreign keys)
    await services.files.remove_bytes(file_ids)
    return Response(status_code=204)
