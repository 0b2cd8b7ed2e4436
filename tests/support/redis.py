"""Redis for the tests: the server on 127.0.0.1:6379 (``AILAB_TEST_REDIS_URL`` overrides), else a skip
with the reason."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("AILAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def redis_or_skip() -> Any:
    """A client of the test Redis, after a ping; skips the test, saying why, when none answers."""
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis unavailable at {REDIS_URL}: {type(exc).__name__}")
    return client
