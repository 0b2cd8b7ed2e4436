"""Login and the caller's own account: ``POST /auth/login`` (public), ``/auth/me`` and ``/auth/tokens``.

``router`` holds the public login; ``protected_router`` the routes that need a signed-in caller. API
tokens are listed without their secret, which is shown once, in the answer that creates it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from ailab.api.deps import CurrentUser, ServicesDep
from ailab.db.tables import ApiToken

router = APIRouter(tags=["auth"])
protected_router = APIRouter(tags=["auth"])

TokenId = Annotated[str, Path(max_length=64, description="an API token id")]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - not a secret
    expires_in: int


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="what the token is for")


def token_to_dict(row: ApiToken, owner: str | None = None) -> dict[str, Any]:
    """The public JSON shape of an API token: never its secret or its hash."""
    body: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }
    if owner is not None:
        body["user"] = owner
    return body


@router.post("/auth/login")
async def login(body: LoginRequest, request: Request, services: ServicesDep) -> TokenResponse:
    """A signed access token for ``Authorization: Bearer``.

    401 on a wrong name or password; 429 with ``Retry-After`` after repeated failures for the name or
    from the address.
    """
    address = request.client.host if request.client else None
    token = await services.auth.login(body.username, body.password, address)
    return TokenResponse(access_token=token, expires_in=services.settings.access_token_ttl_seconds)


@protected_router.get("/auth/me")
async def me(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Who you are signed in as."""
    row = await services.auth.get_user(user.name)
    return {
        "id": row.id,
        "username": row.name,
        "role": row.role,
        "created_at": row.created_at.isoformat(),
    }


@protected_router.post("/auth/tokens", status_code=201)
async def create_token(body: TokenCreate, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """A new API token for you; ``token`` is shown in this answer only (store it now)."""
    plaintext, row = await services.auth.create_api_token(user.name, body.name)
    return {"id": row.id, "name": row.name, "token": plaintext, "created_at": row.created_at.isoformat()}


@protected_router.get("/auth/tokens")
async def list_tokens(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Your API tokens, oldest first, revoked ones included; never their secret."""
    rows = await services.auth.list_api_tokens(user.id)
    return {"items": [token_to_dict(token) for token, _ in rows]}


@protected_router.delete("/auth/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: TokenId, user: CurrentUser, services: ServicesDep) -> Response:
    """Revoke one of your API tokens; refused at once. Another user's token answers 404."""
    await services.auth.revoke_api_token(token_id, user.id)
    return Response(status_code=204)
