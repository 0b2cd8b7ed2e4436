"""A cache whose entries expire, and whose misses are loaded once.

The credential caches (API tokens and access tokens, the anonymous admin, the vault's provider keys) all
expire at the same moment for every request that uses them. Without this, every request in flight at
that moment missed together and each loaded the entry itself: on SQLite, each through a connection of
its own, past the pool's size (a new thread, the file opened and its schema parsed, then closed), which
showed as a stall of the whole server every few seconds under load. Here the first miss starts one load
and the others wait for it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")
Loader = Callable[[], Awaitable[tuple[V, float]]]  # the value and how many seconds it stays valid


class Missing(enum.Enum):
    """What :meth:`ExpiringCache.cached` answers for a key without a valid value (a value may be None)."""

    MISSING = enum.auto()


MISSING = Missing.MISSING


class ExpiringCache(Generic[K, V]):
    """Values by key, each until its own expiry; concurrent misses of one key share one load.

    A load runs as a task of its own, so a caller that is cancelled (a client that hung up) cancels
    neither the load nor the other callers waiting for it; a load that fails fails all of them and
    caches nothing. :meth:`clear` forgets the values and the loads under way: a load started before it
    (which may have read what a change just replaced) is neither cached nor joined by later callers.
    """

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    def cached(self, key: K) -> V | Literal[Missing.MISSING]:
        """The value of ``key`` if it is cached and still valid, else :data:`MISSING`.

        The hit path of the hot callers, before they build a loader for :meth:`get`: one call, not a
        closure and a coroutine (the credential lookups run twice per gateway request).
        """
        hit = self._values.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        return MISSING

    async def get(self, key: K, load: Loader[V]) -> V:
        """The value of ``key``: cached if still valid, else loaded once for every caller that misses."""
        hit = self.cached(key)
        if hit is not MISSING:
            return hit
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key, load, self._generation))
            loading.add_done_callback(_retrieve)  # its error is the callers'; none is left unread
            self._loading[key] = loading
        return await asyncio.shield(loading)

    async def _load(self, key: K, load: Loader[V], generation: int) -> V:
        started = self._clock()
        try:
            value, valid_for = await load()
        finally:
            if generation == self._generation:
                self._loading.pop(key, None)
        if generation == self._generation and valid_for > 0:
            if len(self._values) >= self.max_entries:
                self._values.clear()
            self._values[key] = (started + valid_for, value)
        return value

    def pop(self, key: K) -> None:
        """Forget ``key``'s value; loads under way (of any key) then cache nothing."""
        self._generation += 1
        self._values.pop(key, None)
        self._loading.clear()

    def clear(self) -> None:
        """Forget every value, and every load under way (see the class docstring)."""
        self._generation += 1
        self._values.clear()
        self._loading.clear()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
