"""The parts of usage accounting on their own: periods, the budgets' view of use, the recorder."""

from __future__ import annotations

import datetime as dt

import pytest

from ailab.errors import QuotaExceeded
from ailab.services.usage.budgets import TOKEN, USER, Budget, Budgets
from ailab.services.usage.periods import Calendar, bounds
from ailab.services.usage.recorder import UsageRecorder


def ts(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("hour", ts(2030, 3, 17, 12, 59, 59), ts(2030, 3, 17, 12), ts(2030, 3, 17, 13)),
        ("day", ts(2030, 3, 17, 23, 59), ts(2030, 3, 17), ts(2030, 3, 18)),
        ("month", ts(2030, 12, 31, 23), ts(2030, 12, 1), ts(2031, 1, 1)),
        ("month", ts(2028, 2, 29, 12), ts(2028, 2, 1), ts(2028, 3, 1)),
        ("month", ts(2030, 1, 1), ts(2030, 1, 1), ts(2030, 2, 1)),
    ],
)
def test_periods_are_utc_hours_days_and_months(period: str, now: float, start: float, end: float) -> None:
    assert bounds(period, now) == (start, end)
    assert Calendar().bounds(period, now) == (start, end)


def test_the_calendar_follows_a_clock_set_back() -> None:
    calendar = Calendar()
    assert calendar.bounds("day", ts(2030, 3, 17, 12)) == (ts(2030, 3, 17), ts(2030, 3, 18))
    assert calendar.bounds("day", ts(2030, 3, 16, 12)) == (ts(2030, 3, 16), ts(2030, 3, 17))


def test_a_budget_counts_this_process_and_the_shared_totals_of_its_period() -> None:
    budgets = Budgets()
    budgets.replace([Budget(USER, "u", "day", 10, None), Budget(TOKEN, "t", "hour", None, 100)])
    noon = ts(2030, 3, 17, 12)
    budgets.note("u", "t", int(noon), 60)
    budgets.note("u", "", int(noon), 5)  # without a token: the user's only
    assert budgets.used(USER, "u", "day", noon) == (2, 65)
    assert budgets.used(TOKEN, "t", "hour", noon) == (1, 60)

    shared = budgets.begin_sync()
    assert budgets.used(USER, "u", "day", noon) == (2, 65)  # still counted while it is being shared
    assert shared[(USER, "u")] == {int(noon): [2, 65]}
    budgets.abort_sync()  # the store did not take it: kept for the next sync
    assert budgets.used(USER, "u", "day", noon) == (2, 65)

    budgets.begin_sync()
    day, hour = int(ts(2030, 3, 17)), int(noon)
    budgets.end_sync({(USER, "u", "day"): (day, 9, 80), (TOKEN, "t", "hour"): (hour, 3, 99)})
    assert budgets.used(USER, "u", "day", noon) == (9, 80)  # the totals include what was shared
    budgets.check("u", "t", noon)  # 9 of 10 requests, 99 of 100 tokens
    budgets.note("u", "", int(noon), 1)  # the user's tenth
    with pytest.raises(QuotaExceeded) as refused:
        budgets.check("u", None, noon + 60)
    assert refused.value.retry_after == 12 * 3600 - 60
    assert refused.value.message.startswith("your usage budget is spent: 10 of 10 requests today")

    # The next day the totals read yesterday are not today's.
    tomorrow = ts(2030, 3, 18, 0, 0, 1)
    assert budgets.used(USER, "u", "day", tomorrow) == (0, 0)
    budgets.check("u", None, tomorrow)


def test_a_token_budget_refuses_at_its_limit_only() -> None:
    budgets = Budgets()
    budgets.replace([Budget(TOKEN, "t", "hour", None, 100)])
    noon = ts(2030, 3, 17, 12)
    budgets.note("u", "t", int(noon), 99)
    budgets.check("u", "t", noon)
    budgets.check("u", "other", noon)
    budgets.note("u", "t", int(noon), 1)
    with pytest.raises(QuotaExceeded) as spent:
        budgets.check("u", "t", noon)
    assert spent.value.message.startswith(
        "this API token's usage budget is spent: 100 of 100 tokens this hour"
    )
    budgets.check("u", None, noon)  # the user may go on without that token


def test_the_recorder_keeps_counts_whose_write_failed() -> None:
    recorder = UsageRecorder()
    key = (3600, "u", "", "local/m")
    recorder.add(key, 3, 4)
    recorder.add(key, 1, 1)
    taken = recorder.take()
    assert taken == {key: [2, 4, 5]} and len(recorder) == 0
    recorder.add(key, 10, 10)
    recorder.restore(taken)
    assert recorder.take() == {key: [3, 14, 15]}
