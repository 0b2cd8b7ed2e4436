"""Budget periods: the hour, the day and the month, in UTC; every one starts on an hour's start."""

from __future__ import annotations

import datetime as dt
from typing import Literal

Period = Literal["hour", "day", "month"]
PERIODS: tuple[Period, ...] = ("hour", "day", "month")
HOUR_S = 3600
DAY_S = 86_400


def hour_of(now: float) -> int:
    """The start (unix seconds) of the hour ``now`` falls in: the bucket usage is counted in."""
    return int(now // HOUR_S) * HOUR_S


def bounds(period: str, now: float) -> tuple[int, int]:
    """``(start, end)`` in unix seconds of the ``period`` that ``now`` falls in."""
    if period == "hour":
        start = hour_of(now)
        return start, start + HOUR_S
    if period == "day":
        start = int(now // DAY_S) * DAY_S
        return start, start + DAY_S
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    first = dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC)
    following = dt.datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=dt.UTC)
    return int(first.timestamp()), int(following.timestamp())


def as_datetime(seconds: float) -> dt.datetime:
    """Unix seconds as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class Calendar:
    """:func:`bounds` of every period, computed once per hour (the check runs per request)."""

    def __init__(self) -> None:
        self._hour = (0, 0)
        self._bounds: dict[str, tuple[int, int]] = {}

    def bounds(self, period: str, now: float) -> tuple[int, int]:
        """``(start, end)`` of the ``period`` that ``now`` falls in."""
        if not self._hour[0] <= now < self._hour[1]:  # a new hour (or a clock set back): every period anew
            self._bounds = {p: bounds(p, now) for p in PERIODS}
            self._hour = self._bounds["hour"]
        return self._bounds[period]
