"""Detecting a generation that loops: the same tokens over and over ("Ava Ava Ava ...").

Small models at low temperature fall into loops and, left alone, repeat until the context is full. A
:class:`RepetitionGuard` watches the sampled token ids and reports when the tail of the output is
periodic: a unit of ``p`` tokens (``1 <= p <= max_period``) repeated at least ``min_repeats`` times and
over at least ``min_span`` tokens. Legitimate text rarely does that (a table rule or an indented block
repeats a few tokens a few times, well under the span).

It is incremental and cheap: for every period ``p`` it keeps how many trailing tokens equal the token ``p``
places before them, so each new token costs ``max_period`` comparisons, whatever the output's length.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PERIOD = 128
MIN_SPAN = 24
MIN_REPEATS = 3


@dataclass(frozen=True, slots=True)
class Loop:
    """A detected loop: the length of its unit and how many tokens it spans so far."""

    period: int
    span: int


class RepetitionGuard:
    """Feed it each sampled token; it answers a :class:`Loop` once the output repeats itself."""

    def __init__(
        self, *, max_period: int = MAX_PERIOD, min_span: int = MIN_SPAN, min_repeats: int = MIN_REPEATS
    ) -> None:
        if max_period < 1 or min_span < 2 or min_repeats < 2:
            raise ValueError("max_period >= 1, min_span >= 2 and min_repeats >= 2 are required")
        self.max_period = max_period
        self.min_span = min_span
        self.min_repeats = min_repeats
        self._tokens: list[int] = []
        # _runs[p]: how many trailing tokens equal the token p places before them.
        self._runs = [0] * (max_period + 1)

    def add(self, token: int) -> Loop | None:
        """Take the next token; the loop its output now ends in, or None."""
        tokens, runs = self._tokens, self._runs
        count = len(tokens)
        found: Loop | None = None
        for period in range(1, min(self.max_period, count) + 1):
            if tokens[count - period] == token:
                run = runs[period] + 1
                runs[period] = run
                span = run + period
                if found is None and span >= self.min_span and span >= self.min_repeats * period:
                    found = Loop(period, span)
            else:
                runs[period] = 0
        tokens.append(token)
        return found
