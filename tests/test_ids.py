"""Time-ordered row ids (UUID version 7)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from ailab import ids
from ailab.ids import time_ordered_id


def test_an_id_is_a_uuid_of_version_7_with_its_creation_millisecond() -> None:
    before_ms = time.time_ns() // 1_000_000
    value = uuid.UUID(time_ordered_id())
    after_ms = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before_ms <= value.int >> 80 <= after_ms


def test_ids_sort_by_creation_time_and_do_not_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(1_700_000_000_000_000_000, 1_700_000_000_000_000_000 + 10**9 * 100, 10**6))
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock))  # one millisecond per id
    made = [time_ordered_id() for _ in range(2_000)]
    assert made == sorted(made)  # as text too: the order the database's b-trees keep
    assert len(set(made)) == len(made)


def test_ids_of_one_millisecond_differ_in_their_74_random_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_000_000_000)
    made = {time_ordered_id() for _ in range(10_000)}
    assert len(made) == 10_000
    assert len({value[:13] for value in made}) == 1  # the same time prefix


def test_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    made = [ids.new_request_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)


def test_a_forked_process_gets_its_own_request_id_prefix() -> None:
    parent = ids.new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and leave without running the test's teardown
        os.write(write, ids.new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32
    assert child[:16] != parent[:16]
