"""Fixtures of the vault tests: a fake OpenAI server and keys in its format."""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator

import pytest

from tests.fakes.openai_server import FakeOpenAI


def openai_key() -> str:
    """A fresh, well-formed OpenAI key."""
    return "sk-proj-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))


@pytest.fixture
async def openai_server() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI on 127.0.0.1 that accepts one key."""
    async with FakeOpenAI(api_key=openai_key()) as server:
        yield server


def last_bearer(server: FakeOpenAI) -> str | None:
    """The bearer key of the last request the fake received."""
    header = server.requests[-1].header("authorization") if server.requests else None
    return header.removeprefix("Bearer ") if header else None
