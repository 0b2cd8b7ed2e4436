"""User management for admins: ``GET/POST /users``, ``PATCH/DELETE /users/{name}``.

Every route here needs the ``admin`` role (403 otherwise). Changes take effect at once: a disabled or
deleted user, or one whose password changed, is refused on the next request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field

from ailab.api.deps import ServicesDep, require_admin
from ailab.db.tables import User

router = APIRouter(tags=["users"], dependencies=[Depends(require_admin)])

UserName = Annotated[str, Path(min_length=1, max_length=64, description="a user name")]
Role = Literal["admin", "user"]


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Role = "user"


class UserUpdate(BaseModel):
    disabled: bool | None = None
    role: Role | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)


def user_to_dict(row: User) -> dict[str, Any]:
    """The public JSON shape of a user: never the password hash."""
    return {
        "id": row.id,
        "username": row.name,
        "role": row.role,
        "disabled": row.disabled,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


@router.get("/users")
async def list_users(services: ServicesDep) -> dict[str, Any]:
    """Every user, by name."""
    return {"items": [user_to_dict(u) for u in await services.auth.list_users()]}


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, services: ServicesDep) -> dict[str, Any]:
    """Create a user (409 when the name is taken)."""
    return user_to_dict(await services.auth.create_user(body.username, body.password, body.role))


@router.patch("/users/{name}")
async def update_user(name: UserName, body: UserUpdate, services: ServicesDep) -> dict[str, Any]:
    """Disable or enable a user, change the role or set a new password.

    409 when it would leave no active admin.
    """
    row = await services.auth.update_user(
        name, disabled=body.disabled, role=body.role, password=body.password
    )
    return user_to_dict(row)


@router.delete("/users/{name}", status_code=204)
async def delete_user(name: UserName, services: ServicesDep) -> Response:
    """Delete a user with their sessions and tokens (409 for the last active admin)."""
    await services.auth.delete_user(name)
    return Response(status_code=204)
