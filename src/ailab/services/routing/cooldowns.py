"""Which deployments are cooling down, and how many requests each has in flight.

Every deployment has one :class:`DeploymentState` per process, by its key (``provider/model``, with
``@<base url>`` for another host): shared by every alias that lists it, and kept across reloads of the
models file. Routing reads it on the hot path as plain attributes; only failures write.

The rule (per alias, :class:`~ailab.services.routing.config.CooldownSpec`): a deployment that fails
``failures`` times within a window of ``seconds`` (counted from the first failure) is left out for
``seconds``; a 429 whose Retry-After says when to come back leaves it out that long (at most
``MAX_RETRY_AFTER_S``) at once. Successes write nothing, so a fixed window, not a streak, decides.

With Redis (``AILAB_REDIS_URL``) the failures are counted and the cool-downs kept in Redis, so every
replica leaves out what one saw failing: ``<prefix>:routing:fails:<key>`` counts (expiring with its
window), ``<prefix>:routing:cool:<key>`` exists while the deployment cools down (expiring when it
recovers). Time in Redis is its own (TTLs), so the replicas' clocks need not agree. A replica reads the
cool-downs of its deployments in one round trip at most once per ``SYNC_INTERVAL_S``, on the first request
after that interval, so a request does not wait on Redis otherwise. Redis failing never fails a
request: the process counts alone until it answers again (and logs why).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from ailab.services.routing.config import CooldownSpec

SYNC_INTERVAL_S = 1.0
MAX_RETRY_AFTER_S = 600.0
log = logging.getLogger("ailab.routing")


@dataclass(slots=True)
class DeploymentState:
    """One deployment in this process: cooling down until ``until`` (clock time; 0: never was), its
    requests in flight, and its failures counted in the current window (without Redis)."""

    key: str
    until: float = 0.0
    in_flight: int = 0
    failures: int = 0
    window_end: float = 0.0


# KEYS[1] the failure count, KEYS[2] the cool-down; ARGV: window ms, failures, cool-down ms, Retry-After ms.
# Answers the cool-down's remaining ms (<= 0: not cooling down).
_FAILED = """
local retry_after = tonumber(ARGV[4])
if retry_after > 0 then
  if redis.call('PTTL', KEYS[2]) < retry_after then redis.call('SET', KEYS[2], '1', 'PX', retry_after) end
  return redis.call('PTTL', KEYS[2])
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) and tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
end
return redis.call('PTTL', KEYS[2])
"""
# The remaining ms of each cool-down in KEYS (<= 0: none).
_REMAINING = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('PTTL', key) end
return out
"""


class RedisCooldowns:
    """Failures and cool-downs in Redis, for every replica (see the module docstring)."""

    def __init__(self, redis: Any, prefix: str = "ailab") -> None:
        self._prefix = f"{prefix}:routing:"
        self._failed = redis.register_script(_FAILED)
        self._remaining = redis.register_script(_REMAINING)

    async def failed(self, key: str, rule: CooldownSpec, retry_after: float | None) -> float:
        """Count a failure of ``key``; the seconds it now cools down (0: it does not)."""
        seconds_ms = max(1, int(rule.seconds * 1000))
        args = [seconds_ms, rule.failures, int(rule.seconds * 1000), int((retry_after or 0) * 1000)]
        keys = [f"{self._prefix}fails:{key}", f"{self._prefix}cool:{key}"]
        remaining_ms = int(await self._failed(keys=keys, args=args))
        return max(0, remaining_ms) / 1000

    async def remaining(self, keys: list[str]) -> list[float]:
        """The seconds each of ``keys`` still cools down (0: it does not)."""
        answer = await self._remaining(keys=[f"{self._prefix}cool:{key}" for key in keys])
        return [max(0, int(ms)) / 1000 for ms in answer]


class CooldownBook:
    """Every deployment's state in this process, with the cool-downs shared through Redis when set."""

    def __init__(self, clock: Callable[[], float], shared: RedisCooldowns | None = None) -> None:
        self.clock = clock
        self._shared = shared
        self._states: dict[str, DeploymentState] = {}
        # When to read the shared cool-downs next (never without Redis): checked on every request.
        self.next_sync = 0.0 if shared is not None else math.inf

    def state(self, key: str) -> DeploymentState:
        """The state of the deployment ``key`` (created on first use: keys come from the models file)."""
        found = self._states.get(key)
        if found is None:
            found = self._states[key] = DeploymentState(key)
        return found

    async def sync(self) -> None:
        """Read the shared cool-downs of every known deployment (one round trip); later for a while."""
        if self._shared is None:
            return
        now = self.clock()
        self.next_sync = now + SYNC_INTERVAL_S
        states = list(self._states.values())
        if not states:
            return
        try:
            remaining = await self._shared.remaining([state.key for state in states])
        except (RedisError, OSError) as exc:
            log.warning("routing: reading the shared cool-downs failed (%s); using this process's", exc)
            return
        for state, seconds in zip(states, remaining, strict=True):
            state.until = now + seconds if seconds > 0 else 0.0

    async def failed(self, state: DeploymentState, rule: CooldownSpec, retry_after: float | None) -> None:
        """Count a failure of ``state``'s deployment; it may start cooling down (see the module doc)."""
        retry_after = min(retry_after, MAX_RETRY_AFTER_S) if retry_after else None
        if self._shared is not None:
            try:
                seconds = await self._shared.failed(state.key, rule, retry_after)
            except (RedisError, OSError) as exc:
                log.warning("routing: counting a failure in Redis failed (%s); counting here", exc)
            else:
                if seconds > 0:
                    self._cool(state, self.clock() + seconds, retry_after)
                return
        self._count(state, rule, retry_after)

    def _count(self, state: DeploymentState, rule: CooldownSpec, retry_after: float | None) -> None:
        now = self.clock()
        if retry_after:
            self._cool(state, max(state.until, now + retry_after), retry_after)
            return
        if now >= state.window_end:
            state.failures, state.window_end = 0, now + rule.seconds
        state.failures += 1
        if state.failures >= rule.failures and rule.seconds > 0:
            state.failures = 0
            self._cool(state, now + rule.seconds, None)

    def _cool(self, state: DeploymentState, until: float, retry_after: float | None) -> None:
        if until > state.until:
            why = f"Retry-After {retry_after:g}s" if retry_after else "repeated failures"
            log.warning("routing: %s left out for %.1fs (%s)", state.key, until - self.clock(), why)
        state.until = until
