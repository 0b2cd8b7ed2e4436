"""Queries on usage (``usage_counts``) and budgets (``usage_limits``).

Every function is a transaction function (a synchronous ``Connection``, run through
:meth:`~ailab.db.engine.Database.run_read` / ``run_write``): one hop on SQLite. Counts are added with one
upsert per batch (``INSERT ... ON CONFLICT DO UPDATE``, which SQLite and PostgreSQL both have), so several
processes can add to the same hour's row without reading it first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased

from ailab.db.tables import ApiToken, UsageCount, UsageLimit, User

USAGE = cast(Table, UsageCount.__table__)
LIMITS = cast(Table, UsageLimit.__table__)
USERS = cast(Table, User.__table__)
TOKENS = cast(Table, ApiToken.__table__)
KEY = ("bucket", "user_id", "token_id", "model")
COUNTS = ("requests", "prompt_tokens", "completion_tokens")
NOBODY = ""  # the key columns' value for "no user" / "no API token"


def _insert(conn: Connection) -> Any:
    return postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert


def add_counts(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Add ``rows`` (dicts of :class:`UsageCount` columns) to what is stored, creating missing rows.

    Sorted by key first: two processes adding to the same rows then lock them in the same order, so
    PostgreSQL never has to break a deadlock between their flushes.
    """
    if not rows:
        return 0
    statement = _insert(conn)(USAGE)
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: USAGE.c[name] + statement.excluded[name] for name in COUNTS},
    )
    conn.execute(statement, sorted(rows, key=lambda row: tuple(row[k] for k in KEY)))
    return len(rows)


def period_totals(
    conn: Connection, kind: str, ids: Sequence[str], starts: Mapping[str, dt.datetime]
) -> dict[str, dict[str, tuple[int, int]]]:
    """Per user (``kind`` ``user``) or API token id: ``{period: (requests, tokens)}`` counted since each
    period's start in ``starts`` (``{"day": <midnight>, ...}``)."""
    if not ids or not starts:
        return {}
    column = USAGE.c.user_id if kind == "user" else USAGE.c.token_id
    tokens = USAGE.c.prompt_tokens + USAGE.c.completion_tokens
    sums = []
    for start in starts.values():
        inside = USAGE.c.bucket >= start
        sums += [
            func.sum(case((inside, USAGE.c.requests), else_=0)),
            func.sum(case((inside, tokens), else_=0)),
        ]
    query = (
        select(column, *sums)
        .where(column.in_(list(ids)), USAGE.c.bucket >= min(starts.values()))
        .group_by(column)
    )
    totals: dict[str, dict[str, tuple[int, int]]] = {}
    for row in conn.execute(query):
        values = [int(v or 0) for v in row[1:]]
        totals[row[0]] = {p: (values[2 * i], values[2 * i + 1]) for i, p in enumerate(starts)}
    return totals


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One line of a usage report; the columns not grouped by are None."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    user_id: str | None = None
    user: str | None = None  # the user's name (None: no user, or one deleted since)
    token_id: str | None = None
    token_name: str | None = None
    model: str | None = None


def summarize(conn: Connection, group_by: str, since: dt.datetime, user_id: str | None) -> list[UsageRow]:
    """Usage since ``since`` (hour buckets starting then or later), grouped by ``user``, ``token`` or
    ``model``; only ``user_id``'s when given. Largest first (by tokens, then requests)."""
    sums = [func.sum(USAGE.c[name]) for name in COUNTS]
    where = [USAGE.c.bucket >= since]
    if user_id is not None:
        where.append(USAGE.c.user_id == user_id)
    if group_by == "model":
        keys: list[Any] = [USAGE.c.model]
        query = select(*keys, *sums)
    elif group_by == "token":
        keys = [USAGE.c.token_id, TOKENS.c.name, USAGE.c.user_id, USERS.c.name]
        query = (
            select(*keys, *sums)
            .outerjoin(TOKENS, TOKENS.c.id == USAGE.c.token_id)
            .outerjoin(USERS, USERS.c.id == USAGE.c.user_id)
        )
    else:
        keys = [USAGE.c.user_id, USERS.c.name]
        query = select(*keys, *sums).outerjoin(USERS, USERS.c.id == USAGE.c.user_id)
    query = query.where(*where).group_by(*keys)
    rows = []
    for row in conn.execute(query):
        head, (requests, prompt, completion) = row[: len(keys)], (int(v or 0) for v in row[len(keys) :])
        if group_by == "model":
            found = UsageRow(requests, prompt, completion, model=head[0])
        elif group_by == "token":
            found = UsageRow(
                requests,
                prompt,
                completion,
                _id(head[2]),
                head[3],
                _id(head[0]),
                head[1] if head[0] else None,
            )
        else:
            found = UsageRow(requests, prompt, completion, _id(head[0]), head[1])
        rows.append(found)
    rows.sort(
        key=lambda r: (-(r.prompt_tokens + r.completion_tokens), -r.requests, r.user or "", r.model or "")
    )
    return rows


def _id(value: str | None) -> str | None:
    return value or None  # NOBODY reads as None


# Budgets ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitRow:
    """A stored budget with the names of what it limits (None where that was deleted)."""

    kind: str
    subject_id: str
    period: str
    max_requests: int | None
    max_tokens: int | None
    name: str | None  # the user's name, or the API token's
    owner_id: str | None  # the user it applies to: the user, or the token's owner
    owner: str | None


def list_limits(conn: Connection) -> list[LimitRow]:
    """Every budget, by kind, name and period."""
    owner = aliased(USERS)
    is_user, is_token = LIMITS.c.kind == "user", LIMITS.c.kind == "token"
    query = (
        select(
            LIMITS.c.kind,
            LIMITS.c.subject_id,
            LIMITS.c.period,
            LIMITS.c.max_requests,
            LIMITS.c.max_tokens,
            func.coalesce(USERS.c.name, TOKENS.c.name),
            func.coalesce(USERS.c.id, owner.c.id),
            func.coalesce(USERS.c.name, owner.c.name),
        )
        .outerjoin(USERS, and_(is_user, USERS.c.id == LIMITS.c.subject_id))
        .outerjoin(TOKENS, and_(is_token, TOKENS.c.id == LIMITS.c.subject_id))
        .outerjoin(owner, owner.c.id == TOKENS.c.user_id)
        .order_by(LIMITS.c.kind.desc(), LIMITS.c.subject_id, LIMITS.c.period)
    )
    return [LimitRow(*row) for row in conn.execute(query)]


def put_limit(
    conn: Connection,
    kind: str,
    subject_id: str,
    period: str,
    *,
    max_requests: int | None,
    max_tokens: int | None,
    now: dt.datetime,
) -> None:
    """Create or replace a budget."""
    values = {"max_requests": max_requests, "max_tokens": max_tokens, "updated_at": now}
    statement = _insert(conn)(LIMITS).values(
        kind=kind, subject_id=subject_id, period=period, created_at=now, **values
    )
    conn.execute(
        statement.on_conflict_do_update(index_elements=["kind", "subject_id", "period"], set_=values)
    )


def delete_limit(conn: Connection, kind: str, subject_id: str, period: str) -> bool:
    """Remove a budget; whether there was one."""
    where = and_(LIMITS.c.kind == kind, LIMITS.c.subject_id == subject_id, LIMITS.c.period == period)
    return bool(conn.execute(delete(LIMITS).where(where)).rowcount)


def find_subject(conn: Connection, kind: str, subject: str) -> tuple[str, str] | None:
    """``(id, owner id)`` of a user by name (``kind`` ``user``) or of an API token by id; None if unknown.

    Browser sessions are token rows too, but not API tokens: they are not found.
    """
    if kind == "user":
        found = conn.execute(select(USERS.c.id).where(USERS.c.name == subject)).first()
        return None if found is None else (found[0], found[0])
    query = select(TOKENS.c.id, TOKENS.c.user_id).where(TOKENS.c.id == subject, TOKENS.c.kind == "api")
    row = conn.execute(query).first()
    return None if row is None else (row[0], row[1])
