"""Queries on users and their API tokens.

The two lookups behind every authenticated request take a synchronous ``Connection`` and run as
transaction functions (:meth:`~ailab.db.engine.Database.run_read`): one hop on SQLite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.tables import ApiToken, ChatSession, User

USERS = cast(Table, User.__table__)
TOKENS = cast(Table, ApiToken.__table__)
_CREDENTIAL_USER = select(USERS.c.id, USERS.c.name, USERS.c.role, USERS.c.disabled, USERS.c.updated_at)
_USER_BY_ID = _CREDENTIAL_USER.where(USERS.c.id == bindparam("uid"))
_USER_BY_TOKEN = (
    _CREDENTIAL_USER.add_columns(
        TOKENS.c.id.label("token_id"),
        TOKENS.c.revoked_at,
        TOKENS.c.last_used_at,
        TOKENS.c.kind,
        TOKENS.c.expires_at,
        TOKENS.c.created_at.label("token_created_at"),
    )
    .join_from(TOKENS, USERS, TOKENS.c.user_id == USERS.c.id)
    .where(TOKENS.c.token_hash == bindparam("hash"))
)


def find_credential_user(conn: Connection, user_id: str) -> Row[*tuple[Any, ...]] | None:
    """``id, name, role, disabled, updated_at`` of a user, for checking an access token."""
    return conn.execute(_USER_BY_ID, {"uid": user_id}).first()


def find_token_user(conn: Connection, token_hash: str) -> Row[*tuple[Any, ...]] | None:
    """The user columns of :func:`find_credential_user` plus ``token_id, revoked_at, last_used_at, kind,
    expires_at, token_created_at`` of the token with this hash."""
    return conn.execute(_USER_BY_TOKEN, {"hash": token_hash}).first()


async def get_user(db: AsyncSession, user_id: str) -> User | None:
    """A user by id."""
    return await db.get(User, user_id)


async def get_user_by_name(db: AsyncSession, name: str) -> User | None:
    """A user by name."""
    return (await db.scalars(select(User).where(User.name == name))).first()


async def list_users(db: AsyncSession) -> Sequence[User]:
    """Every user, by name."""
    return (await db.scalars(select(User).order_by(User.name))).all()


async def count_users(db: AsyncSession) -> int:
    """How many users exist."""
    return int((await db.execute(select(func.count()).select_from(User))).scalar_one())


async def count_active_admins(db: AsyncSession) -> int:
    """How many admins are not disabled."""
    query = select(func.count()).select_from(User).where(User.role == "admin", User.disabled.is_(False))
    return int((await db.execute(query)).scalar_one())


async def count_sessions_of(db: AsyncSession, user_id: str) -> int:
    """How many chat sessions a user owns (they go with the user)."""
    query = select(func.count()).select_from(ChatSession).where(ChatSession.owner_id == user_id)
    return int((await db.execute(query)).scalar_one())


async def add_user(db: AsyncSession, user: User) -> User:
    """Insert a user."""
    db.add(user)
    await db.flush()
    return user


async def delete_user(db: AsyncSession, user_id: str) -> None:
    """Delete a user; the database cascades to their tokens, sessions and benchmark runs."""
    await db.execute(delete(User).where(User.id == user_id))


async def add_token(db: AsyncSession, token: ApiToken) -> ApiToken:
    """Insert an API token row."""
    db.add(token)
    await db.flush()
    return token


async def get_token(db: AsyncSession, token_id: str) -> ApiToken | None:
    """An API token row by id."""
    return await db.get(ApiToken, token_id)


async def list_tokens(db: AsyncSession, user_id: str | None = None) -> Sequence[tuple[ApiToken, str]]:
    """API tokens (not browser sessions) with their owner's name, of one user or of all, oldest first."""
    query = (
        select(ApiToken, User.name)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.kind == "api")
        .order_by(ApiToken.created_at, ApiToken.id)
    )
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [(token, name) for token, name in (await db.execute(query)).all()]


def touch_token(conn: Connection, token_id: str, when: dt.datetime) -> None:
    """Record when an API token was last used."""
    conn.execute(update(TOKENS).where(TOKENS.c.id == token_id).values(last_used_at=when))


def revoke_browser_session(conn: Connection, token_hash: str, when: dt.datetime) -> None:
    """End a browser session (a token of kind ``browser``) by its hash."""
    conn.execute(
        update(TOKENS)
        .where(TOKENS.c.token_hash == token_hash, TOKENS.c.kind == "browser", TOKENS.c.revoked_at.is_(None))
        .values(revoked_at=when)
    )
