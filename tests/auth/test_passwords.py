"""Passwords are stored as argon2id hashes at the production cost (the other tests use a cheaper one)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from ailab.services.auth import accounts


@pytest.fixture
def production_hasher(monkeypatch: pytest.MonkeyPatch) -> PasswordHasher:
    hasher = PasswordHasher()  # what accounts.PASSWORD_HASHER is outside the tests
    monkeypatch.setattr(accounts, "PASSWORD_HASHER", hasher)
    return hasher


async def test_a_password_is_stored_as_argon2id_at_rfc_9106_cost(production_hasher: PasswordHasher) -> None:
    stored = await accounts.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "correct horse battery" not in stored
    assert await accounts.verify_password(stored, "correct horse battery")
    assert not await accounts.verify_password(stored, "correct horse battery!")
    assert not await accounts.verify_password("not a hash", "correct horse battery")


async def test_hashes_made_at_another_cost_still_verify(production_hasher: PasswordHasher) -> None:
    # The cost is in the hash itself: a user created under other parameters can still sign in.
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("pw-of-old")
    assert await accounts.verify_password(cheap, "pw-of-old")
