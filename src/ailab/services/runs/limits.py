"""The per-user limit of concurrent runs (``AILAB_MAX_RUNS_PER_USER``).

In one process the running runs are counted in memory. With Redis every replica counts in the same
sorted set per user: members are run ids, scores the time their lease ends. A replica renews the
scores of its runs while they live, so the runs of a replica that died stop counting when their lease
ends, without anyone cleaning up after it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any, Protocol

from redis.exceptions import RedisError

from ailab.errors import SharedStateUnavailable, TooManyRunning

RETRY_AFTER_S = 2.0


def limit_reached(limit: int) -> TooManyRunning:
    """The 429 of a user at the limit."""
    return TooManyRunning(
        f"you have {limit} runs in progress (the limit, AILAB_MAX_RUNS_PER_USER): wait for one to end "
        "or cancel one (POST /runs/{id}/cancel)",
        RETRY_AFTER_S,
    )


class RunLimits(Protocol):
    """Counts each user's running runs."""

    async def acquire(self, user_key: str, run_id: str) -> None:
        """Count a new run, or raise TooManyRunning when the user is at the limit."""

    async def release(self, user_key: str, run_id: str) -> None:
        """Stop counting a run."""

    async def renew(self, runs: Sequence[tuple[str, str]], lease_s: float) -> None:
        """Keep counting these ``(user_key, run_id)`` for ``lease_s`` more seconds."""


class MemoryRunLimits:
    """The limit in one process."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running: dict[str, set[str]] = {}

    async def acquire(self, user_key: str, run_id: str) -> None:
        """Count a new run, or raise TooManyRunning."""
        running = self._running.setdefault(user_key, set())
        if len(running) >= self._limit:
            raise limit_reached(self._limit)
        running.add(run_id)

    async def release(self, user_key: str, run_id: str) -> None:
        """Stop counting a run."""
        running = self._running.get(user_key)
        if running is not None:
            running.discard(run_id)
            if not running:
                del self._running[user_key]

    async def renew(self, runs: Sequence[tuple[str, str]], lease_s: float) -> None:
        """Nothing to renew: this process's memory dies with its runs."""


# Drop the ended leases, then count and add in one step (two replicas never both take the last slot).
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
"""


class RedisRunLimits:
    """The limit shared by every replica through Redis."""

    def __init__(self, redis: Any, limit: int, lease_s: float, *, prefix: str = "ailab") -> None:
        self._redis = redis
        self._limit = limit
        self._lease_ms = int(lease_s * 1000)
        self._prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)

    def _key(self, user_key: str) -> str:
        return f"{self._prefix}:runs:user:{user_key}"

    async def acquire(self, user_key: str, run_id: str) -> None:
        """Count a new run, or raise TooManyRunning."""
        now = int(time.time() * 1000)
        try:
            taken = await self._acquire(
                keys=[self._key(user_key)], args=[now, now + self._lease_ms, self._limit, run_id]
            )
        except RedisError as exc:
            raise SharedStateUnavailable(f"Redis does not answer ({type(exc).__name__})") from None
        if not taken:
            raise limit_reached(self._limit)

    async def release(self, user_key: str, run_id: str) -> None:
        """Stop counting a run (its lease would end anyway if Redis is unreachable now)."""
        with contextlib.suppress(RedisError):
            await self._redis.zrem(self._key(user_key), run_id)

    async def renew(self, runs: Sequence[tuple[str, str]], lease_s: float) -> None:
        """Push the lease of these runs forward."""
        until = int((time.time() + lease_s) * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_key, run_id in runs:
                pipe.zadd(self._key(user_key), {run_id: until}, xx=True)
                pipe.pexpireat(self._key(user_key), until)
            await pipe.execute()
