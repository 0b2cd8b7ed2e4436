"""Identifiers for rows that are inserted all the time (sessions, runs).

A random UUID (version 4) lands each new row on a random page of its table's b-trees, so every insert
dirties a page that is rarely in cache and writes it whole to the journal; the tables of a busy server
then cost more to write the bigger they grow. A UUID of version 7 (RFC 9562) starts with the time in
milliseconds: new rows go to the end of the index, on pages that are already in memory, and ids still
cannot be guessed (74 random bits).
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62


def time_ordered_id() -> str:
    """A new UUID version 7 as text (``xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx``): ordered by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are kept
    rand_a = rand >> 68  # 12 bits after the version
    rand_b = rand & ((1 << 62) - 1)  # 62 bits after the variant
    value = (ms & ((1 << 48) - 1)) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT_RFC | rand_b
    return str(uuid.UUID(int=value))


class _RequestIds:
    """A random prefix per process and a counter (see :func:`new_request_id`)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked worker must not repeat its parent's

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()  # 64 random bits: distinct per process
        self.count = 0


_REQUEST_IDS = _RequestIds()


def new_request_id() -> str:
    """A request id: 32 hex digits, like a UUID's, unique across processes, replicas and restarts.

    It names a request in logs and error answers, so it must be unique but need not be unguessable:
    one ``os.urandom`` per process instead of one per request (with its UUID object, that was 1.5-2%
    of the gateway's CPU per request).
    """
    ids = _REQUEST_IDS
    ids.count += 1
    return f"{ids.prefix}{ids.count:016x}"
