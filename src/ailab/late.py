"""Work started only for the requests that last: one timer per event loop, not one per request.

A gateway request on a fast upstream is over in a few milliseconds, and some of what guards it is needed
only if it lasts: the watch for a client that hangs up (a task reading ``receive``), the timer of an
upstream call's deadline. Arming a loop timer per request and cancelling it when the answer came first
cost ~1.7 us with uvloop, more than the rest of such a guard. So a guard joins its loop's
:class:`LateStarts`, which every ``PERIOD_S`` starts those that were already waiting at the previous
tick (each waited one to two periods), and stops ticking when none is left, so an idle server is not
woken. A guard whose work ends first leaves (:meth:`LateStarts.discard`) having cost two set operations.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

PERIOD_S = 0.05


class LateStart(Protocol):
    """What :class:`LateStarts` starts: a guard of work that has lasted."""

    def start(self) -> None:
        """Begin guarding (the work has run one to two periods)."""
        ...


class LateStarts:
    """The guards of one event loop waiting to be started (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ticking = False
        self._new: set[LateStart] = set()  # added since the last tick
        self._waited: set[LateStart] = set()  # waiting since before it: started at the next tick

    def add(self, guard: LateStart) -> None:
        """Start ``guard`` in one to two periods, unless it is discarded first."""
        self._new.add(guard)
        if not self.ticking:
            self.ticking = True
            self.loop.call_later(PERIOD_S, self.tick)

    def discard(self, guard: LateStart) -> None:
        """Forget ``guard`` (its work is done); nothing when it was started or discarded already."""
        self._new.discard(guard)
        self._waited.discard(guard)

    def tick(self) -> None:
        """Start the guards that waited a whole period; tick again while others wait."""
        due, self._waited, self._new = self._waited, self._new, set()
        for guard in due:
            guard.start()
        if self._waited:
            self.loop.call_later(PERIOD_S, self.tick)
        else:
            self.ticking = False


class _ByLoop:
    """Each event loop's :class:`LateStarts`, the last one asked for at hand (a server has one loop)."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LateStarts] = (
            weakref.WeakKeyDictionary()
        )
        self._last: LateStarts | None = None

    def of(self, loop: asyncio.AbstractEventLoop) -> LateStarts:
        """The late starts of ``loop``."""
        last = self._last
        if last is None or last.loop is not loop:
            last = self._by_loop.get(loop)
            if last is None:
                last = self._by_loop[loop] = LateStarts(loop)
            self._last = last
        return last


LATE_STARTS = _ByLoop()
