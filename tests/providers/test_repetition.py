"""The loop detector: cuts a repeating tail, leaves ordinary text alone."""

from __future__ import annotations

import pytest

from ailab.providers.repetition import RepetitionGuard


def first_loop(tokens: list[int], guard: RepetitionGuard | None = None) -> tuple[int, int, int] | None:
    """(index of the token that completed the loop, period, span), or None."""
    guard = guard or RepetitionGuard()
    for index, token in enumerate(tokens):
        found = guard.add(token)
        if found is not None:
            return index, found.period, found.span
    return None


def test_one_token_repeated_is_cut_after_the_minimum_span() -> None:
    assert first_loop([7, 8, 9] + [5] * 40) == (3 + 23, 1, 24)


def test_a_sentence_repeated_three_times_is_cut() -> None:
    sentence = list(range(100, 140))  # 40 tokens: "la Femme, la Femme" at paragraph scale
    found = first_loop([1, 2, 3] + sentence * 4)
    assert found is not None
    index, period, span = found
    assert period == 40
    assert span == 120  # three whole repeats
    assert index == 3 + 120 - 1


def test_short_units_need_the_span_not_just_three_repeats() -> None:
    unit = [11, 12, 13, 14]  # "| --- |" four tokens: 3 repeats are 12 tokens, under the span
    assert first_loop(unit * 5) is None
    found = first_loop(unit * 8)
    assert found is not None and found[1] == 4 and found[2] == 24


def test_ordinary_text_and_counting_are_not_loops() -> None:
    counting = [t for n in range(1, 40) for t in (n + 1000, 13, n + 1000, 10)]  # "1. 1\n2. 2\n..."
    assert first_loop(counting) is None
    varied = [(i * 7919) % 503 for i in range(2000)]
    assert first_loop(varied) is None


def test_a_unit_longer_than_the_longest_period_is_not_seen() -> None:
    unit = list(range(200))
    assert first_loop(unit * 3, RepetitionGuard(max_period=128)) is None
    assert first_loop(unit * 3, RepetitionGuard(max_period=256)) is not None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_period"):
        RepetitionGuard(max_period=0)
