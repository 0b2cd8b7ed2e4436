"""A missing PostgreSQL or Redis skips a test on a developer's machine and fails it in CI."""

from __future__ import annotations

import pytest

from tests.support.postgres import free_port
from tests.support.redis import redis_or_skip
from tests.support.unavailable import unavailable


def test_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL unavailable: no server"):
        unavailable("PostgreSQL unavailable: no server")


@pytest.mark.parametrize("value", ["false", "1", ""])
def test_only_ci_true_fails(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # Only the exact value CI services set switches the rule; anything else keeps the skip.
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception):
        unavailable("Redis unavailable")


def test_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Redis unavailable at redis://x: OSError"):
        unavailable("Redis unavailable at redis://x: OSError")


async def test_an_unreachable_redis_fails_the_test_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on a port just freed: the ping is refused at once, as with no Redis at all.
    monkeypatch.setenv("CI", "true")
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(pytest.fail.Exception, match=f"Redis unavailable at {url}: ConnectionError"):
        await redis_or_skip(url)
