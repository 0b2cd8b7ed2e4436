"""Counting on the hot path without prometheus-client's per-call cost, added to its metrics in batches.

A gateway request records into a dozen Prometheus series (its duration, the generation's duration,
tokens, outcome...). prometheus-client takes a lock for every counter step and every histogram
observation (and, in multiprocess mode, writes a memory-mapped file): measured, 7% of the instructions of
a gateway request. A :class:`Tallies` keeps them as plain numbers instead, under one lock per recording,
and :meth:`Tallies.flush` adds them to the prometheus-client children in one step per series: before
every exposition (so a scrape of this process is exact), with each system sample and at shutdown (so in
multiprocess mode the other workers' files are at most one sample behind).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any


class CounterTally:
    """The increments of one counter child since its last flush."""

    __slots__ = ("amount", "child", "due")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.amount = 0.0
        self.due = False

    def flush(self) -> None:
        """Add the increments to the child (the caller holds the tallies' lock)."""
        self.child.inc(self.amount)
        self.amount, self.due = 0.0, False


class HistogramTally:
    """The observations of one histogram child since its last flush: counts per bucket and their sum."""

    __slots__ = ("bounds", "child", "counts", "due", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        # prometheus-client has no call that observes many values at once; its histogram child keeps one
        # value per bucket (``_buckets``, each counting the observations of that bucket alone, in the order
        # of ``_upper_bounds``, +Inf last) and one for their sum (``_sum``). tests/test_tally.py checks the
        # exposition against a histogram given the same observations one by one.
        self.bounds: list[float] = child._upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.due = False

    def flush(self) -> None:
        """Add the observations to the child (the caller holds the tallies' lock)."""
        for value, count in zip(self.child._buckets, self.counts, strict=True):
            if count:
                value.inc(count)
        self.child._sum.inc(self.total)
        self.counts = [0] * len(self.bounds)
        self.total, self.due = 0.0, False


class Tallies:
    """The tallies of one :class:`~ailab.metrics.Metrics`: record under :attr:`lock` with :meth:`inc`
    and :meth:`observe` (any thread), and :meth:`flush` them into their children."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._due: list[CounterTally | HistogramTally] = []

    def inc(self, tally: CounterTally, amount: float = 1.0) -> None:
        """Count ``amount`` more (with :attr:`lock` held)."""
        tally.amount += amount
        if not tally.due:
            tally.due = True
            self._due.append(tally)

    def observe(self, tally: HistogramTally, amount: float) -> None:
        """Observe ``amount``: the bucket of the first bound it does not exceed, as prometheus-client's
        ``observe`` (with :attr:`lock` held)."""
        tally.counts[bisect_left(tally.bounds, amount)] += 1
        tally.total += amount
        if not tally.due:
            tally.due = True
            self._due.append(tally)

    def flush(self) -> None:
        """Add everything recorded since the last flush to the prometheus-client children."""
        with self.lock:
            due, self._due = self._due, []
            for tally in due:
                tally.flush()
