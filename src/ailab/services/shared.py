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


async def connect_redis(url: str) -> Any:
    """A Redis client for ``url``, after a ping; ConfigError naming AILAB_REDIS_URL if it fails."""
    try:
        client = aioredis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
    except ValueError as exc:
        raise ConfigError(f"AILAB_REDIS_URL is not a Redis URL: {exc}") from None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        raise ConfigError(f"AILAB_REDIS_URL: Redis does not answer ({type(exc).__name__})") from None
    return client
