"""Usage counted in memory per (hour, user, API token, model), written to ``usage_counts`` in batches.

Adding a generation costs a few dictionary operations; the background flush
(:class:`~ailab.services.usage.service.UsageService`) adds everything counted since the last one to the
stored rows in one upsert. A batch whose write fails is put back and tried again at the next flush, so a
database outage delays the counts rather than losing them (they are bounded by the distinct keys of the
outage's hours, not by the requests). A process that dies without shutting down loses what it counted
since its last flush.
"""

from __future__ import annotations

from ailab.db.engine import Database
from ailab.db.repos import usage as repo
from ailab.services.usage.periods import as_datetime

# (hour start in unix seconds, user id, API token id, provider/model); "" for no user or token. The model
# id is cut to the column's 255 characters before it becomes a key, so two keys never share a row.
Key = tuple[int, str, str, str]
Counts = dict[Key, list[int]]  # -> [requests, prompt tokens, completion tokens]


class UsageRecorder:
    """This process's counts since its last flush."""

    def __init__(self) -> None:
        self._counts: Counts = {}

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, key: Key, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one generation."""
        counts = self._counts.get(key)
        if counts is None:
            self._counts[key] = [1, prompt_tokens, completion_tokens]
            return
        counts[0] += 1
        counts[1] += prompt_tokens
        counts[2] += completion_tokens

    def take(self) -> Counts:
        """Everything counted so far; counting starts again from nothing."""
        taken, self._counts = self._counts, {}
        return taken

    def restore(self, taken: Counts) -> None:
        """Put back counts whose write failed, beside what was counted meanwhile."""
        for key, (requests, prompt, completion) in taken.items():
            counts = self._counts.setdefault(key, [0, 0, 0])
            counts[0] += requests
            counts[1] += prompt
            counts[2] += completion

    @staticmethod
    async def write(db: Database, taken: Counts) -> int:
        """Add ``taken`` to the stored counts in one transaction; returns the rows touched."""
        rows = [
            {
                "bucket": as_datetime(hour),
                "user_id": user_id,
                "token_id": token_id,
                "model": model,  # cut to the column's length before it became a key
                "requests": requests,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
            }
            for (hour, user_id, token_id, model), (requests, prompt, completion) in taken.items()
        ]
        return await db.run_write(repo.add_counts, rows)
