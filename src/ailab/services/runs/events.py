"""A run's events: their public JSON shape, and the numbered buffer its followers read.

Every event of a run is an SSE frame ``id: N`` + ``data: {json}``, numbered from 1 (the ``run`` event).
The buffer keeps them while the run is active and for a while after; any number of followers read it
from any point (``Last-Event-ID``) and wait for what comes next. The producer never waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from ailab.services.chat.turns import AgentEnd, AgentStart, Decision, Delta, Final, PipelineEvent

DONE_FRAME = b"data: [DONE]\n\n"


def frame(seq: int, data: bytes) -> bytes:
    """One SSE event with its id."""
    return b"id: %d\ndata: %s\n\n" % (seq, data)


def run_payload(run_id: str, session_id: str) -> dict[str, Any]:
    """The first event of every run."""
    return {"type": "run", "run_id": run_id, "session_id": session_id}


def final_payload(final: Final, session_id: str) -> dict[str, Any]:
    """The ``final`` event (``api/schemas/chat.FinalEvent`` documents it)."""
    usage = final.usage
    return {
        "type": "final",
        "response": final.response,
        "session_id": session_id,
        "model": final.model,
        "thought_process": final.thought_process,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "ttft_ms": final.ttft_ms,
        "tokens_per_second": final.tokens_per_second,
    }


def event_payload(event: PipelineEvent, session_id: str) -> dict[str, Any]:
    """The public SSE shape of a pipeline event."""
    if isinstance(event, Delta):
        return {"type": "delta", "delta": event.text, "agent": event.agent}
    if isinstance(event, AgentStart):
        return {"type": "agent_start", "agent": event.agent}
    if isinstance(event, Decision):
        return {"type": "decision", "agent": event.agent, "next": event.next}
    if isinstance(event, AgentEnd):
        return {"type": "agent_end", "agent": event.agent}
    return final_payload(event, session_id)


def error_payload(message: str, session_id: str) -> dict[str, Any]:
    """The ``error`` event that ends a failed run."""
    return {"type": "error", "error": message, "session_id": session_id}


def cancelled_payload(response: str, session_id: str) -> dict[str, Any]:
    """The ``cancelled`` event that ends a cancelled run, with what was produced (and stored)."""
    return {"type": "cancelled", "response": response, "session_id": session_id}


class RunEvents:
    """The numbered events of one run, for its followers.

    An event is kept as its payload and turned into its SSE frame when a follower first reads it (a run
    that nobody follows, a JSON ``/chat``, never pays for it). At most ``max_events`` are kept: past that
    the oldest go (a follower that asks for them starts at the oldest kept; the ``final`` event carries
    the whole answer anyway).
    """

    __slots__ = ("_items", "_max", "_waiters", "done", "finished_at", "first_seq", "last_seq")

    def __init__(self, max_events: int = 50_000) -> None:
        self._items: list[dict[str, Any] | bytes] = []  # item i is event first_seq + i
        self._max = max_events
        self._waiters: list[asyncio.Future[None]] = []
        self.first_seq = 1
        self.last_seq = 0  # the id of the newest event (0 before the first)
        self.done = False
        self.finished_at = 0.0

    def add(self, payload: dict[str, Any]) -> int:
        """Append an event and wake the followers; returns its id."""
        self.last_seq += 1
        self._items.append(payload)
        if len(self._items) > self._max:
            dropped = len(self._items) - self._max // 2  # drop in halves: appends stay O(1) amortised
            del self._items[:dropped]
            self.first_seq += dropped
        if self._waiters:
            self._wake()
        return self.last_seq

    def close(self, now: float) -> None:
        """The run has ended: followers get ``[DONE]`` once they have read everything."""
        self.done = True
        self.finished_at = now
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _frames(self, start: int) -> bytes:
        """The frames of the kept events from index ``start`` on, serialising those not yet serialised."""
        items = self._items
        for index in range(start, len(items)):
            item = items[index]
            if not isinstance(item, bytes):
                items[index] = frame(self.first_seq + index, orjson.dumps(item))
        return b"".join(items[start:])  # type: ignore[arg-type]  # all bytes by now

    async def follow(self, after: int = 0) -> AsyncGenerator[bytes, None]:
        """The frames after event ``after``, as they come, then ``[DONE]``; what is ready at once goes
        out together (one write for a burst of tokens)."""
        sent = after
        while True:
            if sent < self.last_seq:
                start = max(sent + 1 - self.first_seq, 0)
                sent = self.last_seq
                yield self._frames(start)
                continue
            if self.done:
                yield DONE_FRAME
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
