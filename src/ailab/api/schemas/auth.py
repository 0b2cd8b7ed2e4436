"""``/auth``: login, the caller's account and API tokens."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ailab.api.schemas.common import Out, Timestamp


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    """A signed access token for ``Authorization: Bearer``."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - not a secret
    expires_in: int


class Me(Out):
    """The signed-in account."""

    id: str
    username: str = Field(validation_alias="name")
    role: str
    created_at: Timestamp


class SessionState(BaseModel):
    """Whether the caller is signed in, and as whom."""

    user: Me | None = Field(description="null: not signed in (or the session has ended)")


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="what the token is for")


class CreatedToken(Out):
    """A new API token: ``token`` is shown in this answer only."""

    id: str
    name: str
    token: str
    created_at: Timestamp


class ApiTokenOut(Out):
    """An API token as lists show it: never its secret or its hash."""

    id: str
    name: str
    prefix: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class ApiTokenList(BaseModel):
    items: list[ApiTokenOut]
