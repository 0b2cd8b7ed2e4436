"""Redis for the tests: the server on 127.0.0.1:6379 (``AILAB_TEST_REDIS_URL`` overrides), else a skip
with the reason (a failure under ``CI=true``)."""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.support.unavailable import unavailable

REDIS_URL = os.environ.get("AILAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
