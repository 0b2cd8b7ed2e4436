"""Slowing down password guessing: attempts counted per user name and per client address.

Every login attempt is counted **before** its password is checked (so a burst of concurrent guesses
cannot all reach the check before the first failure is recorded) and refunded when it succeeds. Counts
cover a window of ``AILAB_LOGIN_LOCKOUT_SECONDS``:

- a **user name** that reaches ``AILAB_LOGIN_MAX_FAILURES`` is locked for that long: further attempts
  are refused (429 with ``Retry-After``) without checking the password, even the right one, so a
  guesser learns nothing meanwhile;
- an **address** gets ``ADDRESS_FACTOR`` times as many; past that it is **slowed down**, never refused:
  its attempts are checked one at a time, each after ``ADDRESS_DELAY_S``. Several people may share an
  address (a NAT, a reverse proxy without ``AILAB_FORWARDED_ALLOW_IPS``): a sprayer there must not lock
  them out, and the right password of a name that is not locked always gets in.

Two implementations of one protocol: :class:`MemoryThrottle` (one process; a sliding window; bounded to
``MAX_KEYS`` keys, the stalest dropped first) and :class:`RedisThrottle` (``AILAB_REDIS_URL``: every
replica and worker shares the counts; a fixed window that starts at the first counted attempt, checked
and counted in one atomic script).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.exceptions import RedisError

from ailab.errors import SharedStateUnavailable

ADDRESS_FACTOR = 4
ADDRESS_DELAY_S = 1.0
MAX_KEYS = 50_000


@dataclass(frozen=True, slots=True)
class Admission:
    """What to do with a counted attempt: refuse it (the name is locked) or slow it down (the address)."""

    name_wait: float = 0.0  # > 0: refuse, the name is locked for this long
    address_wait: float = 0.0  # > 0: the address is over its limit for this long: slow down


class LoginThrottle(Protocol):
    """Counts login attempts (see the module docstring)."""

    async def begin(self, name: str, address: str | None) -> Admission:
        """Count an attempt for ``name`` from ``address`` now, before its password is checked."""
        ...

    async def succeeded(self, name: str, address: str | None) -> None:
        """The attempt was right: refund it, and forget the name's failures."""
        ...


def name_key(name: str) -> str:
    """User names are counted case-insensitively, so ``Admin`` and ``admin`` share one count."""
    return f"user:{name.casefold()}"


def address_key(address: str) -> str:
    """The count key of a client address."""
    return f"addr:{address}"


@dataclass
class _Entry:
    attempts: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class MemoryThrottle:
    """The counts of this process, in a sliding window (see the module docstring)."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._max_failures = max_failures
        self._window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _count(self, key: str, limit: int, now: float) -> float:
        """Count an attempt on ``key`` unless it is locked; the seconds it stays locked (0: it is not)."""
        entry = self._entries.pop(key, None) or _Entry()
        self._entries[key] = entry  # most recently touched last
        if entry.locked_until > now:
            return entry.locked_until - now
        while entry.attempts and entry.attempts[0] <= now - self._window:
            entry.attempts.popleft()
        entry.attempts.append(now)
        if len(entry.attempts) >= limit:
            entry.locked_until = now + self._window
            entry.attempts.clear()
        return 0.0

    async def begin(self, name: str, address: str | None) -> Admission:
        """Count the attempt; refuse while the name is locked, slow down while the address is."""
        now = self._clock()
        name_wait = self._count(name_key(name), self._max_failures, now)
        address_wait = 0.0
        if address:
            address_wait = self._count(address_key(address), self._max_failures * ADDRESS_FACTOR, now)
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)
        return Admission(name_wait, address_wait)

    async def succeeded(self, name: str, address: str | None) -> None:
        """Forget the name's failures and lock; give the address its attempt back."""
        self._entries.pop(name_key(name), None)
        entry = self._entries.get(address_key(address)) if address else None
        if entry is not None and entry.attempts:
            entry.attempts.pop()


# Count an attempt on one key unless it is locked, atomically: KEYS[1] the count, KEYS[2] the lock;
# ARGV[1] the window (ms), ARGV[2] the limit. Answers the lock's remaining ms (0 when not locked).
_COUNT_SCRIPT = """
local locked = redis.call('PTTL', KEYS[2])
if locked > 0 then return locked end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
  redis.call('DEL', KEYS[1])
end
return 0
"""
# Refund: forget the name's count and lock (KEYS[1], KEYS[2]); one attempt back to the address (KEYS[3]).
_REFUND_SCRIPT = """
redis.call('DEL', KEYS[1], KEYS[2])
if KEYS[3] and redis.call('GET', KEYS[3]) and tonumber(redis.call('GET', KEYS[3])) > 0 then
  redis.call('DECR', KEYS[3])
end
return 0
"""


def _unavailable(exc: RedisError) -> SharedStateUnavailable:
    return SharedStateUnavailable(f"the login throttle's Redis does not answer ({type(exc).__name__})")


class RedisThrottle:
    """The counts shared by every replica through Redis (see the module docstring)."""

    def __init__(
        self, redis: Any, max_failures: int, window_seconds: float, *, prefix: str = "ailab"
    ) -> None:
        self._redis = redis
        self._max_failures = max_failures
        self._window_ms = max(1, int(window_seconds * 1000))
        self._prefix = f"{prefix}:login:"
        self._count = redis.register_script(_COUNT_SCRIPT)
        self._refund = redis.register_script(_REFUND_SCRIPT)

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}{key}", f"{self._prefix}lock:{key}"]

    async def begin(self, name: str, address: str | None) -> Admission:
        """Count the attempt (atomically, for every replica); refuse or slow down as the counts say.

        Raises :class:`SharedStateUnavailable` (503) while Redis does not answer: counting nowhere
        would let a guesser through.
        """
        try:
            return await self._begin(name, address)
        except RedisError as exc:
            raise SharedStateUnavailable(
                f"the login throttle's Redis does not answer ({type(exc).__name__})"
            ) from exc

    async def _begin(self, name: str, address: str | None) -> Admission:
        name_ms = await self._count(
            keys=self._keys(name_key(name)), args=[self._window_ms, self._max_failures]
        )
        address_ms = 0
        if address:
            limit = self._max_failures * ADDRESS_FACTOR
            address_ms = await self._count(
                keys=self._keys(address_key(address)), args=[self._window_ms, limit]
            )
        return Admission(int(name_ms) / 1000, int(address_ms) / 1000)

    async def succeeded(self, name: str, address: str | None) -> None:
        """Forget the name's count and lock; give the address its attempt back."""
        address_count = self._keys(address_key(address))[0] if address else ""
        try:
            await self._refund(keys=[*self._keys(name_key(name)), address_count])
        except RedisError as exc:
            raise SharedStateUnavailable(
                f"the login throttle's Redis does not answer ({type(exc).__name__})"
            ) from exc
