"""Runs: every ``/chat`` turn outlives the request that started it. A streamed one executes in a task of
its own; a JSON one in its request's task, which the server lets finish when the client goes
(:meth:`RunService.execute_here`).

A run begins when its user message is stored (the run's row in the same transaction) and ends when its
answer is stored (its end in the same transaction); its ``final`` event goes out only then, so a client
that has seen the answer whole has an answer that is stored. In between, its events go to a numbered buffer
(:class:`~ailab.services.runs.events.RunEvents`) that the starting request and any follower read; a
client that hangs up only stops reading. ``cancel`` stops the task: the pipeline is closed (the
provider's stream with it) and what was produced is stored, marked cancelled.

Several replicas share runs through Redis (:mod:`ailab.services.runs.bus`): events, cancel requests and
the per-user limit. Without Redis one process keeps all three in memory.

A run never stays "running" after its process died: each process renews a lease on its runs and, at
start and then every few seconds, marks failed the runs of processes that are gone
(:mod:`ailab.services.runs.liveness`), storing an empty answer with status ``error`` for each.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.repos import runs as repo
from ailab.db.repos import sessions as sessions_repo
from ailab.db.tables import ChatSession, Run, utcnow
from ailab.errors import AILabError, NotFound
from ailab.ids import time_ordered_id
from ailab.providers.base import Usage
from ailab.services.chat.service import ChatInput, ChatService, PreparedTurn
from ailab.services.chat.turns import Final
from ailab.services.runs.bus import RedisRunBus
from ailab.services.runs.events import (
    DONE_FRAME,
    RunEvents,
    cancelled_payload,
    error_payload,
    event_payload,
    final_payload,
    frame,
    run_payload,
)
from ailab.services.runs.limits import MemoryRunLimits, RedisRunLimits, RunLimits
from ailab.services.runs.liveness import is_alive, this_instance

log = logging.getLogger("ailab.runs")
LEASE_S = 30.0  # how long a run's process is believed alive without renewing (other hosts only)
MAINTAIN_EVERY_S = 5.0  # lease renewal and the sweep for runs of dead processes
MAX_EVENTS_PER_RUN = 50_000
MAX_ENDED_KEPT = 500  # ended runs whose events stay in memory for replay (the newest)
INTERRUPTED = "interrupted: the server process running it stopped"
SHUT_DOWN = "interrupted: the server shut down"
# The end of a run failed by a sweep: its last events are unknown, so its end gets an id after any of them.
INTERRUPTED_EVENT_ID = 2**31 - 1
FOLLOW_BLOCK_MS = 2_000
CANCEL_WAIT_S = 10.0


@dataclass(eq=False)
class LocalRun:
    """A run this process executes."""

    id: str
    user_key: str
    prepared: PreparedTurn
    events: RunEvents
    task: asyncio.Task[Any] | None = None  # what executes it (cancelled to stop it)
    failure: AILabError | None = None  # why it failed, for a JSON reply's status
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # its answer is stored, its events closed

    @property
    def session_id(self) -> str:
        """The run's session."""
        return self.prepared.session_id


class RunService:
    """Starts, follows, cancels and lists runs (see the module docstring)."""

    def __init__(self, db: Database, chat: ChatService, settings: Settings, redis: Any = None) -> None:
        self._db = db
        self._chat = chat
        self._instance = this_instance()
        self._retention_s = settings.run_events_retention_seconds
        self._limits: RunLimits
        self._bus: RedisRunBus | None = None
        if redis is not None:
            self._limits = RedisRunLimits(
                redis, settings.max_runs_per_user, LEASE_S, prefix=settings.redis_prefix
            )
            self._bus = RedisRunBus(
                redis,
                retention_s=self._retention_s,
                max_events=MAX_EVENTS_PER_RUN,
                prefix=settings.redis_prefix,
            )
        else:
            self._limits = MemoryRunLimits(settings.max_runs_per_user)
        self._active: dict[str, LocalRun] = {}
        self._ended: OrderedDict[str, RunEvents] = OrderedDict()  # only the events: the turn is stored
        self._maintainer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """At server start: fail the runs of processes that are gone, then keep doing so."""
        await self.sweep()
        if self._bus is not None:
            await self._bus.start(self._on_cancel_request)
        self._maintainer = asyncio.create_task(self._maintain_forever(), name="runs-maintainer")

    async def begin(
        self, owner_id: str | None, data: ChatInput, request_id: str, *, background: bool = True
    ) -> LocalRun:
        """Store the turn's user message and its run, and start executing it in a task of its own (or,
        with ``background=False``, when the caller calls :meth:`execute_here`).

        Raises TooManyRunning (429) when the user is at the limit, before anything is stored.
        """
        run_id = time_ordered_id()
        user_key = owner_id or "-"
        await self._limits.acquire(user_key, run_id)
        try:
            new = repo.NewRun(run_id, "", None, self._instance, utcnow() + dt.timedelta(seconds=LEASE_S))
            prepared = await self._chat.prepare(owner_id, data, request_id, run=new)
        except BaseException:
            await self._limits.release(user_key, run_id)
            raise
        run = LocalRun(run_id, user_key, prepared, RunEvents(MAX_EVENTS_PER_RUN))
        prepared.events_emitted = lambda: run.events.last_seq
        self._emit(run, run_payload(run_id, prepared.session_id))
        self._active[run_id] = run
        if background:
            run.task = asyncio.create_task(self._execute(run), name=f"run-{run_id}")
        return run

    async def execute_here(self, run: LocalRun) -> None:
        """Execute a run begun with ``background=False`` in the calling task, to its end.

        For a request whose server does not cancel it when its client goes away (a JSON answer under
        uvicorn): the run then outlives the connection all the same, one task cheaper. A cancel or a
        shutdown cancels this task; the run ends as it would in its own, and this returns normally.
        """
        run.task = asyncio.current_task()
        await self._execute(run)

    def _emit(self, run: LocalRun, payload: dict[str, Any]) -> None:
        seq = run.events.add(payload)
        if self._bus is not None:
            self._bus.publish(run.id, seq, orjson.dumps(payload))

    async def _execute(self, run: LocalRun) -> None:
        prepared, session_id = run.prepared, run.session_id
        final: dict[str, Any] | None = None
        try:
            async for event in self._chat.run(prepared):
                if isinstance(event, Final):  # held back: it goes out once the answer is stored
                    final = event_payload(event, session_id)
                else:
                    self._emit(run, event_payload(event, session_id))
            if final is not None:
                self._emit(run, final)
        except asyncio.CancelledError:  # cancel() or shutdown; the answer so far is stored by now
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # this task ends here, normally
            if prepared.status == "cancelled":
                self._emit(run, cancelled_payload(prepared.answer, session_id))
            else:
                self._emit(run, error_payload(prepared.error or SHUT_DOWN, session_id))
        except AILabError as exc:
            run.failure = exc
            self._emit(run, error_payload(exc.message, session_id))
        except Exception:
            log.exception("run %s of session %s failed", run.id, session_id)
            self._emit(run, error_payload("internal server error", session_id))
        finally:
            run.ended.set()
            run.events.close(asyncio.get_running_loop().time())
            if self._bus is not None:
                self._bus.end(run.id, run.events.last_seq)
            self._active.pop(run.id, None)
            self._ended[run.id] = run.events
            self._forget_expired()
            await self._limits.release(run.user_key, run.id)

    async def wait(self, run: LocalRun) -> None:
        """Until the run has ended and its answer is stored; the caller's cancellation leaves it running."""
        await run.ended.wait()

    def _forget_expired(self) -> None:
        horizon = asyncio.get_running_loop().time() - self._retention_s
        while self._ended:
            oldest = next(iter(self._ended.values()))
            if len(self._ended) <= MAX_ENDED_KEPT and oldest.finished_at > horizon:
                break
            self._ended.popitem(last=False)

    # --- reading runs -------------------------------------------------------------------------------

    async def get(self, viewer_id: str, is_admin: bool, run_id: str) -> Run:
        """The run, if the viewer owns it or is an admin; NotFound otherwise."""
        async with self._db.read() as session:
            row = await repo.get_run(session, run_id)
        if row is None or (row.owner_id != viewer_id and not is_admin):
            raise NotFound(f"run {run_id!r} not found")
        return row

    async def list(
        self, viewer_id: str, is_admin: bool, session_id: str, status: str | None, limit: int
    ) -> Sequence[Run]:
        """A session's runs, newest first, if the viewer owns the session or is an admin."""
        async with self._db.read() as session:
            found = await session.get(ChatSession, session_id)
            if found is None or (found.owner_id != viewer_id and not is_admin):
                raise NotFound(f"session {session_id!r} not found")
            return await repo.list_runs(session, session_id, status, limit)

    async def events(self, run: Run, after: int) -> AsyncGenerator[bytes, None]:
        """The run's SSE frames after event ``after``, then live ones up to ``[DONE]``."""
        active = self._active.get(run.id)
        kept = active.events if active is not None else self._ended.get(run.id)
        if kept is not None:
            return kept.follow(after)
        if self._bus is not None:
            return self._follow_shared(run, after)
        return self._follow_stored(run, after)

    async def _follow_shared(self, run: Run, after: int) -> AsyncGenerator[bytes, None]:
        """Follow a run of another replica through its Redis stream; the stored record past it."""
        assert self._bus is not None
        sent = after
        running = run.status == repo.RUNNING
        while True:
            entries = await self._bus.read(run.id, sent, FOLLOW_BLOCK_MS if running else None)
            for seq, data in entries:
                if data is None:
                    yield DONE_FRAME
                    return
                yield frame(seq, data)
                sent = seq
            if entries:
                continue
            if not running:  # nothing (more) in Redis: the stream expired, or was never complete
                break
            current = await self._reload(run.id)
            if current is None or current.status != repo.RUNNING:
                running = False  # ended (or its process died) while we waited: read what is left
        async for chunk in self._stored_frames(run.id, sent):
            yield chunk

    async def _follow_stored(self, run: Run, after: int) -> AsyncGenerator[bytes, None]:
        """One process, the run not in memory: wait for its record (another worker runs it) and replay."""
        current: Run | None = run
        while current is not None and current.status == repo.RUNNING:
            await asyncio.sleep(1.0)  # no shared events without Redis: the stored answer is what we can give
            current = await self._reload(run.id)
        async for chunk in self._stored_frames(run.id, after):
            yield chunk

    async def _reload(self, run_id: str) -> Run | None:
        async with self._db.read() as session:
            return await repo.get_run(session, run_id)

    async def _stored_frames(self, run_id: str, after: int) -> AsyncGenerator[bytes, None]:
        """A finished run from its record: the ``run`` event, then its end (the answer), then ``[DONE]``."""
        async with self._db.read() as session:
            run = await repo.get_run(session, run_id)
            answer = await repo.answer_of(session, run) if run is not None else None
        if run is None:
            yield DONE_FRAME
            return
        if after < 1:
            yield frame(1, orjson.dumps(run_payload(run.id, run.session_id)))
        last = max(run.last_event_id, 2)
        if run.status != repo.RUNNING and last > after:
            yield frame(last, orjson.dumps(stored_end(run, answer)))
        yield DONE_FRAME

    # --- cancelling ---------------------------------------------------------------------------------

    async def cancel(self, run: Run) -> Run:
        """Stop a running run (wherever it executes) and return it once it has ended (or a few seconds
        have passed); a run that has ended already is returned as it is."""
        if run.status != repo.RUNNING:
            return run
        local = self._active.get(run.id)
        try:
            async with asyncio.timeout(CANCEL_WAIT_S):
                if local is not None:
                    self._stop(local)
                    await self.wait(local)
                elif self._bus is not None:
                    await self._bus.request_cancel(run.id)
                    async for _ in self._follow_shared(run, 0):
                        pass
                else:
                    await self.sweep()  # without Redis, only a dead process's run can be ended from here
        except TimeoutError:
            pass
        return await self._reload(run.id) or run

    def _stop(self, run: LocalRun, error: str | None = None) -> None:
        """Stop a local run: cancelled (``error`` None) or failed with ``error`` (shutdown)."""
        prepared = run.prepared
        if run.task is None or run.task.done() or prepared.final is not None:
            return  # it has its answer already and is only storing it
        if error is None:
            prepared.status = "cancelled"
        else:
            prepared.status, prepared.error = "error", error
        task = run.task

        def cancel() -> None:
            if not run.ended.is_set():  # the task may go on to other work once the run has ended
                task.cancel()

        # Soon, not now: a task cancelled before its first step would never reach its clean-up, and its
        # first step is already queued, so this comes after it.
        asyncio.get_running_loop().call_soon(cancel)

    async def _on_cancel_request(self, run_id: str) -> None:
        local = self._active.get(run_id)
        if local is not None:
            self._stop(local)

    # --- leases and the sweep -----------------------------------------------------------------------

    async def _maintain_forever(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_EVERY_S)  # a periodic duty, not a synchronisation
            try:
                await self.maintain()
            except Exception:  # a database or Redis outage: try again next time
                log.warning("renewing run leases failed", exc_info=True)

    async def maintain(self) -> None:
        """One round of upkeep (every few seconds): forget expired events, renew this process's leases,
        fail the runs of processes that are gone."""
        self._forget_expired()
        await self._renew()
        await self.sweep()

    async def _renew(self) -> None:
        active = list(self._active.values())
        if not active:
            return
        until = utcnow() + dt.timedelta(seconds=LEASE_S)
        # A transaction function: on SQLite it joins the one writer thread instead of contending with it.
        await self._db.run_write(repo.renew_leases, self._instance, [run.id for run in active], until)
        await self._limits.renew([(run.user_key, run.id) for run in active], LEASE_S)

    async def sweep(self) -> int:
        """Mark failed the running runs whose process is gone; returns how many."""
        rows = await self._db.run_read(repo.running_runs)
        now = utcnow()
        dead = [row.id for row in rows if not is_alive(row.instance_id, row.lease_until, now, self._instance)]
        if not dead:
            return 0
        failed = await self._db.run_write(fail_with_answers, dead, INTERRUPTED)
        if failed:
            log.warning("marked %d interrupted runs failed", failed)
        return failed

    async def aclose(self) -> None:
        """Shutdown: stop the runs still executing (their answers so far are stored, failed)."""
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.gather(self._maintainer, return_exceptions=True)
        active = list(self._active.values())
        for run in active:
            self._stop(run, SHUT_DOWN)
        await asyncio.gather(*(run.ended.wait() for run in active))
        if self._bus is not None:
            await self._bus.aclose()


def fail_with_answers(conn: Connection, run_ids: Sequence[str], error: str) -> int:
    """Transaction function: fail these runs if still running, each with an empty answer (``error``),
    so their turn keeps its two messages; returns how many it failed."""
    failed = repo.fail_runs(conn, run_ids, error)
    if not failed:  # another process failed them first
        return 0
    answers = sessions_repo.append_many(
        conn, [sessions_repo.NewMessage(row.session_id, "assistant", "", status="error") for row in failed]
    )
    for row, answer in zip(failed, answers, strict=True):
        if answer is not None:
            repo.set_answer(conn, row.id, answer.id, INTERRUPTED_EVENT_ID)
    return len(failed)


def stored_end(run: Run, answer: Any) -> dict[str, Any]:
    """The last event of a finished run, rebuilt from its record."""
    if run.status == repo.DONE and answer is not None:
        usage = Usage(answer.prompt_tokens or 0, answer.completion_tokens or 0)
        stored = Final(answer.content, answer.model, usage, thought_process=answer.thought_process)
        return final_payload(stored, run.session_id)  # its timings are not stored: null
    if run.status == repo.CANCELLED:
        return cancelled_payload(answer.content if answer is not None else "", run.session_id)
    return error_payload(run.error or "the run failed", run.session_id)
