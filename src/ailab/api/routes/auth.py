"""``POST /auth/login``: exchange a user name and password for a bearer access token."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ailab.api.deps import ServicesDep

router = APIRouter(tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - not a secret
    expires_in: int


@router.post("/auth/login")
async def login(body: LoginRequest, services: ServicesDep) -> TokenResponse:
    """A signed access token for ``Authorization: Bearer``; 401 on a wrong name or password."""
    token = await services.auth.login(body.username, body.password)
    return TokenResponse(access_token=token, expires_in=services.settings.access_token_ttl_seconds)
