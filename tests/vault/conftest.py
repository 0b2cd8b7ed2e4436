"""Fixtures of the vault tests: a fake OpenAI server and keys in its format."""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator

import pytest

from tests.vault.fake_openai import FakeOpenAI, fake_openai


def openai_key() -> str:
    """A fresh, well-formed OpenAI key."""
    return "sk-proj-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))


@pytest.fixture
async def openai_server() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI on 127.0.0.1 that accepts one key."""
    async with fake_openai(openai_key()) as server:
        yield server
