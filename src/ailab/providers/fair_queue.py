"""Admission to a model that serves one request at a time: a bounded queue, fair between users.

The embedded model generates one answer at a time, so requests queue in front of it. Left unbounded, a
few impatient users (each retrying a slow answer) queue work nobody waits for any more, and every
request behind it waits for minutes. :class:`FairQueue` bounds that:

- at most ``max_waiting`` requests wait; one more is refused at once with :class:`ModelBusy` (503 with
  ``Retry-After``);
- a request that waited ``max_wait_s`` without getting its turn gives up with :class:`ModelBusy`;
- waiting requests are served round-robin by *lane* (the requesting user), first come first served
  within a lane, so one user's burst cannot starve the others;
- a waiter that is cancelled (its client went away) leaves the queue at once.

``Retry-After`` is estimated from the average time a request held the model.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque

from ailab.errors import ModelBusy, ProviderUnavailable

INITIAL_HOLD_ESTIMATE_S = 5.0
HOLD_SMOOTHING = 0.2  # weight of the newest hold time in the moving average


class Slot:
    """The right to use the model; :meth:`release` it (once) when the request is done with it."""

    def __init__(self, queue: FairQueue) -> None:
        self._queue = queue
        self._since = time.monotonic()
        self._released = False

    def release(self) -> None:
        """Hand the model on to the next waiting request (idempotent)."""
        if not self._released:
            self._released = True
            self._queue._hand_on(time.monotonic() - self._since)


class FairQueue:
    """One model, ``slots`` requests at a time, the others waiting fairly (see the module docstring)."""

    def __init__(self, what: str, *, max_waiting: int, max_wait_s: float, slots: int = 1) -> None:
        self.what = what
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.slots = slots
        self.holders = 0
        self.waiting = 0
        self._lanes: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._hold_estimate_s = INITIAL_HOLD_ESTIMATE_S
        self._closed = False

    def retry_after(self) -> float:
        """Seconds after which a refused request may find room: the queue ahead of it, on average."""
        return max(1.0, math.ceil(self._hold_estimate_s * (self.waiting + 1) / self.slots))

    async def acquire(self, lane: str = "") -> Slot:
        """Wait for a turn; :class:`ModelBusy` when the queue is full or the wait would be too long."""
        if self._closed:
            raise ProviderUnavailable(f"{self.what} is shutting down")
        if self.holders < self.slots and not self.waiting:
            self.holders += 1
            return Slot(self)
        if self.waiting >= self.max_waiting:
            ahead = f"{self.waiting} requests are already waiting" if self.waiting else "it serves another"
            raise ModelBusy(f"{self.what} is busy: {ahead}; try again later", self.retry_after())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lanes.setdefault(lane, deque()).append(turn)
        self.waiting += 1
        granted = False
        try:
            async with asyncio.timeout(self.max_wait_s):
                await turn
            granted = True
        except TimeoutError:
            raise ModelBusy(
                f"{self.what} is busy: no turn within {self.max_wait_s:g}s; try again later",
                self.retry_after(),
            ) from None
        finally:
            if not granted:
                if turn.done() and not turn.cancelled() and turn.exception() is None:
                    self._hand_on(None)  # the turn came as we gave up: pass it on
                else:
                    turn.cancel()
                    self._forget(lane, turn)
        return Slot(self)

    def _forget(self, lane: str, turn: asyncio.Future[None]) -> None:
        waiters = self._lanes.get(lane)
        if waiters is not None and turn in waiters:
            waiters.remove(turn)
            self.waiting -= 1
            if not waiters:
                del self._lanes[lane]

    def _hand_on(self, held_s: float | None) -> None:
        if held_s is not None:
            self._hold_estimate_s += HOLD_SMOOTHING * (held_s - self._hold_estimate_s)
        while self._lanes:
            lane, waiters = next(iter(self._lanes.items()))
            turn = waiters.popleft()
            self.waiting -= 1
            if waiters:
                self._lanes.move_to_end(lane)  # the other lanes come first next time
            else:
                del self._lanes[lane]
            if not turn.done():
                turn.set_result(None)  # the slot changes hands: holders stays the same
                return
        self.holders -= 1

    def close(self) -> None:
        """Refuse new requests and wake every waiting one with an error (shutdown)."""
        self._closed = True
        while self._lanes:
            _, waiters = self._lanes.popitem(last=False)
            for turn in waiters:
                self.waiting -= 1
                if not turn.done():
                    turn.set_exception(ProviderUnavailable(f"{self.what} is shutting down"))
