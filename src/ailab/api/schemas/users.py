"""``/users``: accounts, for admins."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ailab.api.schemas.common import Out, Timestamp

Role = Literal["admin", "user"]


USERNAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class UserCreate(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN, description="1-64 letters, digits, '.', '_' or '-'")
    password: str = Field(min_length=8, max_length=1024)
    role: Role = "user"


class UserUpdate(BaseModel):
    disabled: bool | None = None
    role: Role | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)


class UserOut(Out):
    """A user: never the password hash."""

    id: str
    username: str = Field(validation_alias="name")
    role: Role
    disabled: bool
    created_at: Timestamp
    updated_at: Timestamp


class UserList(BaseModel):
    items: list[UserOut]
