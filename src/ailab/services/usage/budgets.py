"""Budgets: the limits an admin set, and this process's view of how much of each is spent.

The check (:meth:`Budgets.check`) runs before every request that generates and touches only memory: the
limits (reloaded every few seconds, at once when changed through this process) and, per limited user or
API token and period, the total that the shared store gave at the last sync plus what this process
counted since. A sync (every flush, by default each second) hands this process's new counts to the shared
store and reads the totals back (:mod:`ailab.services.usage.counters`), so all processes enforce one
budget, each seeing the others' use up to a sync late. A budget can therefore be overshot by what the
other processes served within the last sync or two, and a token budget by the request that crosses it
(its tokens are known only once it has run): the check refuses the request after.

A period ends on its boundary in UTC; from then on only counts of the new period are added up, so a
spent budget is renewed at once, without waiting for a sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ailab.errors import QuotaExceeded
from ailab.services.usage.periods import Calendar, as_datetime

USER = "user"
TOKEN = "token"  # noqa: S105 - a kind of subject, not a secret
SubjectKey = tuple[str, str]  # (USER or TOKEN, its id)
Pending = dict[SubjectKey, dict[int, list[int]]]  # per subject: hour start -> [requests, tokens]
TotalKey = tuple[str, str, str]  # (kind, id, period)
Totals = dict[TotalKey, tuple[int, int, int]]  # -> (period start, requests, tokens) of every process
Want = tuple[str, str, str, int]  # (kind, id, period, period start): a total to read at a sync
THIS = {"hour": "this hour", "day": "today", "month": "this month"}


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``max_requests`` generations and/or ``max_tokens`` tokens per ``period`` for a subject."""

    kind: str
    subject_id: str
    period: str
    max_requests: int | None
    max_tokens: int | None


def merge(into: Pending, counts: Pending) -> None:
    """Add ``counts`` to ``into``."""
    for subject, hours in counts.items():
        mine = into.setdefault(subject, {})
        for hour, (requests, tokens) in hours.items():
            both = mine.setdefault(hour, [0, 0])
            both[0] += requests
            both[1] += tokens


class Budgets:
    """The limits of this process and its view of their use (see the module docstring)."""

    def __init__(self) -> None:
        self._limits: dict[SubjectKey, tuple[Budget, ...]] = {}
        self._pending: Pending = {}  # counted here since the last sync began
        self._syncing: Pending = {}  # being handed to the shared store
        self._totals: Totals = {}
        self.calendar = Calendar()

    @property
    def limited(self) -> bool:
        """Whether any budget is set."""
        return bool(self._limits)

    def replace(self, budgets: Iterable[Budget]) -> None:
        """The budgets from now on (as stored)."""
        limits: dict[SubjectKey, list[Budget]] = {}
        for budget in budgets:
            limits.setdefault((budget.kind, budget.subject_id), []).append(budget)
        self._limits = {subject: tuple(found) for subject, found in limits.items()}

    def note(self, user_id: str, token_id: str, hour: int, tokens: int) -> None:
        """Count one generation of ``user_id`` (and ``token_id``; '' for none) in the hour ``hour``."""
        for subject in ((USER, user_id), (TOKEN, token_id)):
            if subject[1]:
                both = self._pending.setdefault(subject, {}).setdefault(hour, [0, 0])
                both[0] += 1
                both[1] += tokens

    def used(self, kind: str, subject_id: str, period: str, now: float) -> tuple[int, int]:
        """``(requests, tokens)`` of a subject in the ``period`` that ``now`` falls in, as known here."""
        start, end = self.calendar.bounds(period, now)
        known = self._totals.get((kind, subject_id, period))
        requests, tokens = (known[1], known[2]) if known is not None and known[0] == start else (0, 0)
        for counted in (self._syncing, self._pending):
            hours = counted.get((kind, subject_id))
            if hours:
                for hour, (more_requests, more_tokens) in hours.items():
                    if start <= hour < end:
                        requests += more_requests
                        tokens += more_tokens
        return requests, tokens

    def check(self, user_id: str, token_id: str | None, now: float) -> None:
        """Raise :class:`QuotaExceeded` when a budget of the user or of the token is spent."""
        user = self._limits.get((USER, user_id))
        token = self._limits.get((TOKEN, token_id)) if token_id else None
        for budgets in (user, token):
            for budget in budgets or ():
                requests, tokens = self.used(budget.kind, budget.subject_id, budget.period, now)
                if budget.max_requests is not None and requests >= budget.max_requests:
                    raise self._spent(budget, requests, budget.max_requests, "requests", now)
                if budget.max_tokens is not None and tokens >= budget.max_tokens:
                    raise self._spent(budget, tokens, budget.max_tokens, "tokens", now)

    def _spent(self, budget: Budget, used: int, limit: int, unit: str, now: float) -> QuotaExceeded:
        _, end = self.calendar.bounds(budget.period, now)
        whose = "your" if budget.kind == USER else "this API token's"
        return QuotaExceeded(
            f"{whose} usage budget is spent: {used} of {limit} {unit} {THIS[budget.period]}; "
            f"it renews at {as_datetime(end).isoformat()}",
            retry_after=end - now,
        )

    # The sync (one at a time; the service holds a lock) ---------------------------------------------

    def begin_sync(self) -> Pending:
        """The counts to hand to the shared store now; until :meth:`end_sync` they still count here."""
        merge(self._syncing, self._pending)
        self._pending = {}
        return self._syncing

    def wanted(self, now: float) -> list[Want]:
        """The totals to read: each budget's, for its current period."""
        return [
            (budget.kind, budget.subject_id, budget.period, self.calendar.bounds(budget.period, now)[0])
            for budgets in self._limits.values()
            for budget in budgets
        ]

    def end_sync(self, totals: Totals) -> None:
        """The shared store took the counts of :meth:`begin_sync`, and these are the totals now."""
        self._totals = totals
        self._syncing = {}

    def abort_sync(self) -> None:
        """The shared store did not take the counts: they wait for the next sync."""
        merge(self._pending, self._syncing)
        self._syncing = {}
