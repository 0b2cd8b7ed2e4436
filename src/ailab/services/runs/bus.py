"""Runs across replicas through Redis (``AILAB_REDIS_URL``): their events and cancel requests.

Each run's events go to a Redis Stream ``<prefix>:run:<id>`` whose entry ids are the events' own SSE
ids (``N-0``), so a follower on any replica resumes with ``XREAD`` after ``Last-Event-ID`` exactly; the
end is an entry ``N-1`` after the last event, and the stream expires a while after the end. One task
per process publishes: it takes whatever events are waiting and sends them in one pipeline, so the run
itself never waits for Redis. Cancel requests are published on one channel that every replica listens
to; the replica executing the run stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("ailab.runs")
MAX_QUEUED = 100_000  # events waiting for Redis; past this (Redis far behind) they are dropped
RECONNECT_S = 1.0
Entry = tuple[int, bytes | None]  # an event's id and JSON, or (last id, None) for the end


class RedisRunBus:
    """Publishes run events to Redis Streams and carries cancel requests between replicas."""

    def __init__(self, redis: Any, *, retention_s: float, max_events: int, prefix: str = "ailab") -> None:
        self._redis = redis
        self._retention_s = max(1, int(retention_s))
        self._max_events = max_events
        self._prefix = prefix
        self._channel = f"{prefix}:runs:cancel"
        self._queue: asyncio.Queue[tuple[str, str, bytes | None]] = asyncio.Queue(MAX_QUEUED)
        self._tasks: list[asyncio.Task[None]] = []
        self._dropped = 0

    def _key(self, run_id: str) -> str:
        return f"{self._prefix}:run:{run_id}"

    async def start(self, on_cancel: Callable[[str], Awaitable[None]]) -> None:
        """Start publishing, and listening for cancel requests (``on_cancel(run_id)``)."""
        subscribed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._publish_forever(), name="runs-publisher"),
            asyncio.create_task(self._listen_forever(on_cancel, subscribed), name="runs-cancel-listener"),
        ]
        async with asyncio.timeout(5):
            await subscribed.wait()  # a cancel sent once the server is ready is not missed

    def publish(self, run_id: str, seq: int, data: bytes) -> None:
        """Queue an event of a run for Redis."""
        self._put((self._key(run_id), f"{seq}-0", data))

    def end(self, run_id: str, last_seq: int) -> None:
        """Queue the end of a run (after its last event ``last_seq``)."""
        self._put((self._key(run_id), f"{last_seq}-1", None))

    def _put(self, item: tuple[str, str, bytes | None]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                log.warning(
                    "Redis is behind: %d run events not published (followers elsewhere will "
                    "get the stored answer)",
                    self._dropped,
                )

    async def _publish_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 4096:
                batch.append(self._queue.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, entry_id, data in batch:
                        if data is None:
                            pipe.xadd(key, {b"end": b"1"}, id=entry_id)
                            pipe.expire(key, self._retention_s)
                        else:
                            pipe.xadd(
                                key, {b"d": data}, id=entry_id, maxlen=self._max_events, approximate=True
                            )
                    await pipe.execute(raise_on_error=False)
            except (RedisError, OSError) as exc:
                log.warning("publishing %d run events to Redis failed: %s", len(batch), type(exc).__name__)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def read(self, run_id: str, after: int, block_ms: int | None) -> list[Entry]:
        """The run's events after ``after`` (waiting up to ``block_ms`` for one, not at all with None);
        empty when none came."""
        reply = await self._redis.xread({self._key(run_id): f"{after}-0"}, count=1024, block=block_ms)
        entries: list[Entry] = []
        for _key, items in reply or []:
            for entry_id, fields in items:
                seq = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")[0])
                if b"end" in fields:  # the end's entry (N-1), after the last event N
                    entries.append((seq, None))
                    return entries
                entries.append((seq, fields[b"d"]))
        return entries

    async def request_cancel(self, run_id: str) -> None:
        """Ask every replica to stop this run."""
        await self._redis.publish(self._channel, run_id)

    async def _listen_forever(
        self, on_cancel: Callable[[str], Awaitable[None]], subscribed: asyncio.Event
    ) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                subscribed.set()
                while True:
                    # A short wait per call: the connection's socket timeout must never expire while idle.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        await on_cancel(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError) as exc:
                log.warning(
                    "listening for run cancellations failed (%s); again in %.0fs",
                    type(exc).__name__,
                    RECONNECT_S,
                )
                await asyncio.sleep(RECONNECT_S)  # back-off before reconnecting, not a synchronisation
            finally:
                await pubsub.aclose()

    async def aclose(self) -> None:
        """Publish what is queued (briefly), then stop."""
        if self._tasks:
            try:
                async with asyncio.timeout(2):
                    await self._queue.join()
            except TimeoutError:
                pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
