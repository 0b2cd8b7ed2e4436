"""Group commit: concurrent small writes that would wait on each other anyway, committed together.

Appends to sessions come in bursts (many writers, one database). One transaction each costs a commit
each, and on SQLite a hop to its database thread each, while the statements themselves take tens of
microseconds. :class:`GroupCommit` queues items and writes everything queued with **one** call of its
batch function (e.g. ``repos.sessions.append_many``: one reservation per session, one insert) in one
write transaction (:meth:`~ailab.db.engine.Database.run_write`); what arrives while a group is being
written goes into the next group (SQLite: one group at a time; PostgreSQL: ``PARALLEL_GROUPS``). No
write waits for company: the first one of an idle queue starts at once.

The guarantees are a single transaction's:

- a caller's ``await`` returns only after the transaction holding its write has committed
  (acknowledged = durable); one that fails raises, and nothing of it was written;
- a group's writes are applied in the order they were queued; on PostgreSQL several groups may be in
  flight at once, so writes that were queued together (concurrent requests, which have no order of
  their own) may commit in either order, while a write sent after another was acknowledged always
  comes after it. A session's messages are numbered under its row lock: one total, gap-free order;
- a group whose transaction fails is written again one item per transaction, so an item that fails
  fails alone, and the others of its group are still written (each exactly once: the failed group
  was rolled back whole).

A caller that is cancelled while it waits (a client that hung up) does not take its write back: it is
written with its group, as a write already sent to the database would be.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from ailab.db.engine import Database

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
MAX_GROUP = 256  # items per transaction: bounds a transaction's time and what one failure re-runs
PARALLEL_GROUPS = 4  # transactions in flight at once on PostgreSQL
log = logging.getLogger("ailab.db")

BatchFunction = Callable[[Connection, Sequence[ItemT]], Sequence[ResultT]]
"""Writes items in the transaction of the connection it is given; one result per item, in order."""


class GroupCommit(Generic[ItemT, ResultT]):
    """Writes items in shared write transactions (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        batch: BatchFunction[ItemT, ResultT],
        *,
        max_group: int = MAX_GROUP,
        parallel: int | None = None,
    ) -> None:
        self._db = db
        self._batch = batch
        self._max_group = max_group
        # SQLite has one writer whatever we do; PostgreSQL commits several groups at once.
        self._parallel = parallel or (1 if db.is_sqlite else PARALLEL_GROUPS)
        self._queue: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.groups = 0  # transactions committed (for tests and benchmarks)

    async def run(self, item: ItemT) -> ResultT:
        """Write ``item`` with the items queued beside it; its result once that transaction committed."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        # A writer that has just finished is done() before its callback drops it from the set.
        if sum(not w.done() for w in self._writers) < self._parallel:
            writer = asyncio.get_running_loop().create_task(self._write_all())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await future

    async def _write_all(self) -> None:
        group: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        try:
            while self._queue:
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
                await self._write(group)
        except asyncio.CancelledError:  # shutting down: whoever still waits gets no acknowledgement
            for _, future in [*group, *self._queue]:
                _settle(future, error=ConnectionAbortedError("the server is shutting down"))
            self._queue.clear()
            raise

    async def _write(self, group: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        try:
            results = await self._db.run_write(self._batch, [item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - each item is tried alone, and fails alone
            if len(group) == 1:
                _settle(group[0][1], error=exc)
                return
            log.info("a group of %d writes failed (%s); writing them one by one", len(group), exc)
            for item, future in group:
                try:
                    (result,) = await self._db.run_write(self._batch, [item])
                except Exception as one:  # noqa: BLE001 - handed to its caller
                    _settle(future, error=one)
                else:
                    _settle(future, result=result)
                    self.groups += 1
            return
        self.groups += 1
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result=result)

    async def wait_idle(self) -> None:
        """Wait until every queued item is written (shutdown, tests)."""
        while self._writers:
            await asyncio.gather(*[asyncio.shield(w) for w in list(self._writers)], return_exceptions=True)


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # its caller was cancelled: the write stands, nobody waits for the answer
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
