"""Redis for the tests: the server on 127.0.0.1:6379 (``AILAB_TEST_REDIS_URL`` overrides); when none
answers, a throwaway ``redis-server`` on a free port (no persistence); when neither is possible, a skip
with the reason (a failure under ``CI=true``). Tests share one Redis: each uses keys of its own
(``AILAB_REDIS_PREFIX``, :func:`unique_prefix`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.support.postgres import free_port
from tests.support.unavailable import unavailable

REDIS_URL = os.environ.get("AILAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
START_TIMEOUT_S = 10.0


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


class ThrowawayRedis:
    """A ``redis-server`` of the test session, stopped at its end."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)  # polling a starting server's port

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def find_or_start_redis() -> ThrowawayRedis | str | None:
    """The URL of a Redis that answers, a started throwaway one, or None (neither is possible)."""
    if _answers(REDIS_URL):
        return REDIS_URL
    if shutil.which("redis-server") is None:
        return None
    return ThrowawayRedis()


def redis_url_of(found: ThrowawayRedis | str | None) -> str:
    """The URL of :func:`find_or_start_redis`'s result; skips (fails under CI) when there is none."""
    if found is None:
        unavailable(f"Redis unavailable: nothing answers at {REDIS_URL} and redis-server is not on PATH")
    return found if isinstance(found, str) else found.url


def unique_prefix() -> str:
    """Key prefix of one test, so tests sharing a Redis never see each other's keys."""
    return f"test-{uuid.uuid4().hex[:12]}"


async def redis_or_skip(url: str | None = None) -> Any:
    """A client of the test Redis (``url``, else ``REDIS_URL``), after a ping; when none answers, skips
    the test saying why (fails it under ``CI=true``)."""
    url = url or REDIS_URL
    client = aioredis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        unavailable(f"Redis unavailable at {url}: {type(exc).__name__}")
    return client
