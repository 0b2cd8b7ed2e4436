"""Queries on runs (``/chat`` turns executed as server tasks).

A run's row is inserted in the transaction that stores its user message (:func:`insert_run`) and
finished in the one that stores its answer (:func:`finish_runs`, called by ``sessions.append_many``):
a run is never "done" without its answer, nor an answer stored for a run still "running".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ailab.db.tables import Message, Run, utcnow

RUNS = cast(Table, Run.__table__)
MESSAGES = cast(Table, Message.__table__)
RUNNING, DONE, CANCELLED, FAILED = "running", "done", "cancelled", "failed"
STATUSES = (RUNNING, DONE, CANCELLED, FAILED)


@dataclass(slots=True)
class NewRun:
    """A run to insert beside its turn's user message (its pipeline and model known once resolved)."""

    id: str
    pipeline: str
    model: str | None
    instance_id: str
    lease_until: dt.datetime


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ended, written with its answer."""

    run_id: str
    status: str
    error: str | None
    last_event_id: int


_INSERT_RUN = insert(RUNS)
_FINISH_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("rid"), RUNS.c.status == RUNNING)
    .values(
        status=bindparam("status"),
        error=bindparam("error"),
        last_event_id=bindparam("last_event_id"),
        answer_id=bindparam("answer_id"),
        finished_at=bindparam("now"),
    )
)


def insert_run(conn: Connection, run: NewRun, *, session_id: str, owner_id: str | None) -> None:
    """Insert a running run of the session (its end's columns stay NULL until it ends)."""
    conn.execute(
        _INSERT_RUN,
        {
            "id": run.id,
            "session_id": session_id,
            "owner_id": owner_id,
            "status": RUNNING,
            "pipeline": run.pipeline,
            "model": run.model,
            "instance_id": run.instance_id,
            "lease_until": run.lease_until,
            "last_event_id": 0,
            "created_at": utcnow(),
        },
    )


def finish_runs(conn: Connection, ends: Sequence[tuple[RunEnd, int | None]]) -> None:
    """Mark runs ended, each with the id of its stored answer (one statement for them all)."""
    if not ends:
        return
    now = utcnow()
    conn.execute(
        _FINISH_RUN,
        [
            {
                "rid": end.run_id,
                "status": end.status,
                "error": end.error,
                "last_event_id": end.last_event_id,
                "answer_id": answer_id,
                "now": now,
            }
            for end, answer_id in ends
        ],
    )


async def get_run(db: AsyncSession, run_id: str) -> Run | None:
    """The run with this id, whoever owns it."""
    return await db.get(Run, run_id)


async def list_runs(db: AsyncSession, session_id: str, status: str | None, limit: int) -> Sequence[Run]:
    """A session's runs, newest first (only those with ``status`` when given)."""
    query = select(Run).where(Run.session_id == session_id)
    if status is not None:
        query = query.where(Run.status == status)
    query = query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
    return (await db.scalars(query)).all()


async def answer_of(db: AsyncSession, run: Run) -> Message | None:
    """The stored answer of a finished run."""
    return None if run.answer_id is None else await db.get(Message, run.answer_id)


def renew_leases(conn: Connection, instance_id: str, run_ids: Sequence[str], until: dt.datetime) -> None:
    """Extend the lease of this process's running runs."""
    if run_ids:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id.in_(run_ids), RUNS.c.instance_id == instance_id, RUNS.c.status == RUNNING)
            .values(lease_until=until)
        )


def running_runs(conn: Connection) -> list[Row[Any]]:
    """``(id, session_id, owner_id, instance_id, lease_until)`` of every running run."""
    query = select(RUNS.c.id, RUNS.c.session_id, RUNS.c.owner_id, RUNS.c.instance_id, RUNS.c.lease_until)
    return list(conn.execute(query.where(RUNS.c.status == RUNNING)))


def fail_runs(conn: Connection, run_ids: Sequence[str], error: str) -> list[Row[Any]]:
    """Mark these runs failed if they are still running; ``(id, session_id, owner_id)`` of those it
    changed (another process sweeping at the same time changes each run once)."""
    if not run_ids:
        return []
    statement = (
        update(RUNS)
        .where(RUNS.c.id.in_(run_ids), RUNS.c.status == RUNNING)
        .values(status=FAILED, error=error, finished_at=utcnow())
        .returning(RUNS.c.id, RUNS.c.session_id, RUNS.c.owner_id)
    )
    return list(conn.execute(statement))


def set_answer(conn: Connection, run_id: str, answer_id: int, last_event_id: int) -> None:
    """Link a run that was failed by a sweep to the answer stored for it."""
    conn.execute(
        update(RUNS).where(RUNS.c.id == run_id).values(answer_id=answer_id, last_event_id=last_event_id)
    )
