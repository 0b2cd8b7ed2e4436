"""The login throttle on its own, with a clock the test moves."""

from __future__ import annotations

from ailab.services.throttle import ADDRESS_FACTOR, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_locks_a_name_after_the_limit_and_releases_it_after_the_lockout() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 60, clock=clock)
    for _ in range(2):
        throttle.failed("admin", "1.2.3.4")
    assert throttle.retry_after("admin", "1.2.3.4") == 0
    throttle.failed("admin", "1.2.3.4")
    assert throttle.retry_after("admin", "5.6.7.8") == 60
    assert throttle.retry_after("ADMIN", None) == 60  # names are counted case-insensitively
    assert throttle.retry_after("other", "5.6.7.8") == 0
    clock.now += 45
    assert throttle.retry_after("admin", None) == 15
    clock.now += 15
    assert throttle.retry_after("admin", None) == 0


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 60, clock=clock)
    throttle.failed("admin", None)
    throttle.failed("admin", None)
    clock.now += 61
    throttle.failed("admin", None)
    assert throttle.retry_after("admin", None) == 0
    throttle.failed("admin", None)
    throttle.failed("admin", None)
    assert throttle.retry_after("admin", None) == 60


def test_an_address_gets_more_failures_than_a_name() -> None:
    throttle = LoginThrottle(2, 30, clock=Clock())
    for i in range(2 * ADDRESS_FACTOR - 1):
        throttle.failed(f"name{i}", "9.9.9.9")
    assert throttle.retry_after("fresh", "9.9.9.9") == 0
    throttle.failed("last", "9.9.9.9")
    assert throttle.retry_after("fresh", "9.9.9.9") == 30
    assert throttle.retry_after("fresh", "8.8.8.8") == 0


def test_success_clears_the_name_only() -> None:
    throttle = LoginThrottle(2, 30, clock=Clock())
    throttle.failed("admin", "1.1.1.1")
    throttle.succeeded("admin")
    throttle.failed("admin", "1.1.1.1")
    assert throttle.retry_after("admin", None) == 0


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle(5, 30, clock=Clock(), max_keys=100)
    for i in range(1000):
        throttle.failed(f"name{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._entries) <= 100
