"""Queries on users and their API tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.tables import ApiToken, User


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


async def add_user(db: AsyncSession, user: User) -> User:
    """Insert a user."""
    db.add(user)
    await db.flush()
    return user


async def add_token(db: AsyncSession, token: ApiToken) -> ApiToken:
    """Insert an API token row."""
    db.add(token)
    await db.flush()
    return token


async def get_token_by_hash(db: AsyncSession, token_hash: str) -> ApiToken | None:
    """The API token row with this hash."""
    return (await db.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash))).first()


async def list_tokens(db: AsyncSession, user_id: str | None = None) -> Sequence[ApiToken]:
    """API tokens, of one user or of all."""
    query = select(ApiToken).order_by(ApiToken.created_at)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return (await db.scalars(query)).all()
