"""Redis, for what several replicas must share (``AILAB_REDIS_URL``): the login counts, later runs.

Connected once at start and checked there: a configured Redis that does not answer stops the start
with a message naming the setting, rather than letting every replica count alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ailab.config import ConfigError

CONNECT_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 1024


async def connect_redis(url: str) -> Any:
    """A Redis client for ``url``, after a ping; ConfigError naming AILAB_REDIS_URL if it fails."""
    try:
        # A blocking pool: past its size a call waits for a connection instead of failing (each follower
        # of a run on another replica holds one while it waits for events).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=CONNECT_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=CONNECT_TIMEOUT_S,
        )
        client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
    except ValueError as exc:
        raise ConfigError(f"AILAB_REDIS_URL is not a Redis URL: {exc}") from None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        raise ConfigError(f"AILAB_REDIS_URL: Redis does not answer ({type(exc).__name__})") from None
    return client
