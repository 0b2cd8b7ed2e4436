"""Slowing down password guessing: a lockout after repeated failed logins.

Failures are counted per user name and per client address over a sliding window of
``AILAB_LOGIN_LOCKOUT_SECONDS``. When a user name reaches ``AILAB_LOGIN_MAX_FAILURES`` failures, further
logins for that name are refused (429 with ``Retry-After``) until the lockout has passed, even with the
right password, so a guesser learns nothing during it. An address gets ``ADDRESS_FACTOR`` times as many
failures before it is locked: several people may share one address (a NAT, a reverse proxy), and the
per-name limit already protects each account; the address limit stops one client spraying many names.

The state lives in memory, per process: with ``--workers N`` a guesser gets up to N times the attempts,
and a restart forgets it. That keeps the check off the database and is enough to make online guessing
against Argon2 hashes impractical. Memory is bounded: at most ``MAX_KEYS`` keys are tracked, the
stalest dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

ADDRESS_FACTOR = 4
MAX_KEYS = 50_000


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins per user name and per address and says when to refuse."""

    def __init__(
        self,
        max_failures: int,
        lockout_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._max_failures = max_failures
        self._lockout = lockout_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    @staticmethod
    def _keys(name: str, address: str | None) -> list[tuple[str, int]]:
        # User names are matched case-insensitively here so "Admin" and "admin" share one counter.
        keys = [(f"user:{name.casefold()}", 1)]
        if address:
            keys.append((f"addr:{address}", ADDRESS_FACTOR))
        return keys

    def retry_after(self, name: str, address: str | None) -> float:
        """Seconds until a login for ``name`` from ``address`` is accepted again; 0 when it is now."""
        now = self._clock()
        wait = 0.0
        for key, _ in self._keys(name, address):
            entry = self._entries.get(key)
            if entry is not None and entry.locked_until > now:
                wait = max(wait, entry.locked_until - now)
        return wait

    def failed(self, name: str, address: str | None) -> None:
        """Record a failed login; locks the name or address once it reaches its limit."""
        now = self._clock()
        for key, factor in self._keys(name, address):
            entry = self._entries.pop(key, None) or _Entry()
            self._entries[key] = entry  # most recently touched last
            while entry.failures and entry.failures[0] <= now - self._lockout:
                entry.failures.popleft()
            entry.failures.append(now)
            if len(entry.failures) >= self._max_failures * factor:
                entry.locked_until = now + self._lockout
                entry.failures.clear()
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)

    def succeeded(self, name: str) -> None:
        """Forget the failures of ``name`` after a successful login (the address keeps its count)."""
        self._entries.pop(f"user:{name.casefold()}", None)
