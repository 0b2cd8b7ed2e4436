"""Usage per user, API token and model, and the budgets that limit it.

**Recording.** The service is an observer of the provider registry: every generation, on every path
(the gateway, ``/chat`` and its agents, the benchmark), ends in one
:class:`~ailab.providers.registry.GenerationRecord`, which is charged to the caller of the request that
caused it (:mod:`ailab.services.usage.attribution`) and counted in memory per hour, user, API token and
model (:mod:`ailab.services.usage.recorder`). Nothing is written on a request's path: a background task
adds the counts to ``usage_counts`` every ``AILAB_USAGE_FLUSH_SECONDS`` (default 1 s) and at shutdown.
**A process that crashes loses the counts of its last flush interval** (they were only in its memory); a
clean shutdown loses nothing, and a database outage only delays them.

A *request* is one generation: a ``/v1`` call is one, a ``/chat`` turn of the ``agents`` pipeline one per
agent step, a failed or cancelled generation one too (the backend was asked).

**Budgets.** An admin sets at most so many requests and/or tokens (prompt and completion) per hour, day or
month (UTC) for a user or an API token. :meth:`UsageService.check` runs before a request generates
anything, in memory only (:mod:`ailab.services.usage.budgets`), and raises :class:`QuotaExceeded` (429,
``Retry-After`` the seconds until the period renews). Processes share their counts through the database,
or through Redis with ``AILAB_REDIS_URL`` (:mod:`ailab.services.usage.counters`), one sync late.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ailab.db.engine import Database
from ailab.db.repos import usage as repo
from ailab.db.repos.usage import NOBODY, LimitRow, UsageRow
from ailab.errors import Forbidden, InvalidInput, NotFound, QuotaExceeded
from ailab.providers.registry import GenerationRecord
from ailab.services.usage.attribution import CALLER
from ailab.services.usage.budgets import TOKEN, USER, Budget, Budgets
from ailab.services.usage.counters import DatabaseCounts, RedisCounts, SharedCounts
from ailab.services.usage.periods import HOUR_S, PERIODS, as_datetime, hour_of
from ailab.services.usage.recorder import UsageRecorder

log = logging.getLogger("ailab.usage")
LIMITS_REFRESH_S = 5.0  # how soon a budget changed through another process applies here
GROUPS = ("user", "token", "model")
MODEL_CHARS = 255


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Usage since ``since`` (the start of the hour ``hours`` ago), one item per group."""

    group_by: str
    hours: float
    since: dt.datetime
    items: list[UsageRow]


@dataclass(frozen=True, slots=True)
class LimitView:
    """A budget with what is spent of it in its current period (as this process knows it)."""

    kind: str
    subject_id: str
    name: str | None
    owner: str | None
    period: str
    max_requests: int | None
    max_tokens: int | None
    used_requests: int
    used_tokens: int
    resets_at: dt.datetime


def requested_model(body: bytes) -> str:
    """The ``model`` an OpenAI request body names ('' when it names none or is no JSON object)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) else ""


class UsageService:
    """Counts usage, stores it in batches, reports it, and enforces budgets (see the module docstring).

    ``clock`` (unix seconds) decides the hour a generation is counted in and the periods of budgets;
    tests give their own to cross a period's end without waiting for it.
    """

    def __init__(
        self,
        db: Database,
        *,
        flush_seconds: float = 1.0,
        redis: Any = None,
        redis_prefix: str = "ailab",
        clock: Callable[[], float] = time.time,
        on_limited: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self._flush_seconds = flush_seconds
        self.clock = clock
        self._on_limited = on_limited
        self._recorder = UsageRecorder()
        self._budgets = Budgets()
        self._counts: SharedCounts = (
            RedisCounts(redis, prefix=redis_prefix) if redis is not None else DatabaseCounts(db)
        )
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # The hot path: memory only -------------------------------------------------------------------

    def observe(self, record: GenerationRecord) -> None:
        """A finished generation (``ProviderRegistry.observers``): count it for its caller."""
        caller = CALLER.get()
        user_id = caller.id if caller is not None else NOBODY
        token_id = (caller.token_id or NOBODY) if caller is not None else NOBODY
        model = record.model or "default"
        if not model.startswith(f"{record.provider}/"):
            model = f"{record.provider}/{model}"
        hour = hour_of(self.clock())
        self._recorder.add(
            (hour, user_id, token_id, model[:MODEL_CHARS]), record.prompt_tokens, record.completion_tokens
        )
        self._budgets.note(user_id, token_id, hour, record.prompt_tokens + record.completion_tokens)

    def check(self, user_id: str, token_id: str | None, model: str | bytes = "") -> None:
        """Raise :class:`QuotaExceeded` when a budget of the user or of the API token is spent.

        ``model``: the model asked for, or the raw JSON body that names it (read only when refusing, to
        count the refusal under its model).
        """
        if not self._budgets.limited:
            return
        try:
            self._budgets.check(user_id, token_id, self.clock())
        except QuotaExceeded:
            if self._on_limited is not None:
                self._on_limited(model if isinstance(model, str) else requested_model(model))
            raise

    # In the background -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the budgets and their use, then flush and sync every ``flush_seconds`` until closed."""
        await self.sync(limits=True)
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="ailab-usage-flush")

    async def _run(self) -> None:
        limits_due = time.monotonic() + LIMITS_REFRESH_S
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._flush_seconds)
            reload = time.monotonic() >= limits_due
            try:
                await self.sync(limits=reload)
            except Exception:  # the database is away: the counts wait in memory for the next round
                log.warning("reading the usage budgets failed", exc_info=True)
            if reload:
                limits_due = time.monotonic() + LIMITS_REFRESH_S

    async def aclose(self) -> None:
        """Stop the background task and write what is counted."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.sync()
        if len(self._recorder):
            log.error("usage of %d (hour, user, token, model) keys could not be written", len(self._recorder))

    async def sync(self, *, limits: bool = False) -> None:
        """Write the counts to the database and exchange them with the other processes (one sync at a
        time); with ``limits``, read the budgets first. Failures are logged; the counts wait for the next
        sync."""
        async with self._lock:
            if limits:
                self._budgets.replace(_budget(row) for row in await self._db.run_read(repo.list_limits))
            taken = self._recorder.take()
            counts = self._budgets.begin_sync()  # the same moment as the recorder's: no await between
            written = True
            if taken:
                try:
                    await self._recorder.write(self._db, taken)
                except Exception as exc:  # noqa: BLE001 - keep serving; the next flush tries again
                    self._recorder.restore(taken)
                    written = False
                    log.warning("writing usage counts failed: %s", type(exc).__name__)
            if not written and self._counts.reads_what_was_written:
                self._budgets.abort_sync()
                return
            try:
                totals = await self._counts.exchange(counts, self._budgets.wanted(self.clock()))
            except Exception as exc:  # noqa: BLE001 - Redis away: enforce with this process's counts
                self._budgets.abort_sync()
                log.warning("sharing usage counts failed: %s", type(exc).__name__)
                return
            self._budgets.end_sync(totals)

    # Reading ---------------------------------------------------------------------------------------

    async def report(
        self,
        viewer_id: str,
        viewer_name: str,
        *,
        is_admin: bool,
        group_by: str,
        hours: float,
        user: str | None,
    ) -> UsageReport:
        """Usage of the last ``hours`` grouped by ``group_by``: the viewer's own, or (admins) everyone's
        or ``user``'s. Includes what was counted up to now (it flushes first)."""
        if group_by not in GROUPS:
            raise InvalidInput(f"group_by must be one of {', '.join(GROUPS)}")
        if hours <= 0:
            raise InvalidInput("hours must be positive")
        user_id: str | None = viewer_id
        if is_admin:
            user_id = None if user is None else await self._subject_id(USER, user)
        elif user is not None and user != viewer_name:
            raise Forbidden("only admins see the usage of other users")
        await self.sync()
        since = as_datetime(hour_of(self.clock() - hours * HOUR_S))
        items = await self._db.run_read(repo.summarize, group_by, since, user_id)
        return UsageReport(group_by, hours, since, items)

    # Budgets ---------------------------------------------------------------------------------------

    async def limits(self, viewer_id: str, is_admin: bool) -> list[LimitView]:
        """Every budget (admins), or those on the viewer and on their API tokens."""
        rows = await self._db.run_read(repo.list_limits)
        return [self._view(row) for row in rows if is_admin or row.owner_id == viewer_id]

    async def set_limit(
        self, kind: str, subject: str, period: str, max_requests: int | None, max_tokens: int | None
    ) -> LimitView:
        """Set the budget of a user (by name) or an API token (by id) for ``period``; effective at once
        in this process, within ``LIMITS_REFRESH_S`` in the others."""
        _check_kind(kind, period)
        if max_requests is None and max_tokens is None:
            raise InvalidInput("a budget needs max_requests, max_tokens or both")
        if any(value is not None and value < 1 for value in (max_requests, max_tokens)):
            raise InvalidInput("max_requests and max_tokens must be at least 1")
        subject_id = await self._subject_id(kind, subject)
        now = as_datetime(time.time())
        await self._db.run_write(
            repo.put_limit,
            kind,
            subject_id,
            period,
            max_requests=max_requests,
            max_tokens=max_tokens,
            now=now,
        )
        await self.sync(limits=True)
        rows = await self._db.run_read(repo.list_limits)
        return next(
            self._view(r) for r in rows if (r.kind, r.subject_id, r.period) == (kind, subject_id, period)
        )

    async def delete_limit(self, kind: str, subject: str, period: str) -> None:
        """Remove a budget; NotFound when there is none."""
        _check_kind(kind, period)
        try:
            subject_id = await self._subject_id(kind, subject)
        except NotFound:
            subject_id = subject  # a budget of a user deleted since: its id is all that is left
        if not await self._db.run_write(repo.delete_limit, kind, subject_id, period):
            raise NotFound(f"no {period} budget for {kind} {subject!r}")
        await self.sync(limits=True)

    async def _subject_id(self, kind: str, subject: str) -> str:
        found = await self._db.run_read(repo.find_subject, kind, subject)
        if found is None:
            raise NotFound(f"no user {subject!r}" if kind == USER else f"no API token {subject!r}")
        return found[0]

    def _view(self, row: LimitRow) -> LimitView:
        now = self.clock()
        requests, tokens = self._budgets.used(row.kind, row.subject_id, row.period, now)
        _, end = self._budgets.calendar.bounds(row.period, now)
        return LimitView(
            row.kind,
            row.subject_id,
            row.name,
            row.owner,
            row.period,
            row.max_requests,
            row.max_tokens,
            requests,
            tokens,
            as_datetime(end),
        )


def _budget(row: LimitRow) -> Budget:
    return Budget(row.kind, row.subject_id, row.period, row.max_requests, row.max_tokens)


def _check_kind(kind: str, period: str) -> None:
    if kind not in (USER, TOKEN):
        raise InvalidInput("a budget is on a 'user' or a 'token'")
    if period not in PERIODS:
        raise InvalidInput(f"period must be one of {', '.join(PERIODS)}")
