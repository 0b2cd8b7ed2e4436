"""Fixtures of the gateway tests (the app on a recording upstream is ``upstream_client`` in
tests/conftest.py): the generation records it reports, and the official ``openai`` SDK talking to the app in process (httpx's ASGI transport).

Each test that builds the app runs through the fast lane and through FastAPI's routes (``both_lanes``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from ailab.providers.registry import GenerationRecord
from tests.conftest import both_lanes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both_lanes(metafunc)


@pytest.fixture
def records(upstream_client: httpx.AsyncClient) -> list[GenerationRecord]:
    """Every GenerationRecord the app reports from now on."""
    seen: list[GenerationRecord] = []
    upstream_client.services.providers.observers.append(seen.append)  # type: ignore[attr-defined]
    return seen


@pytest.fixture
async def sdk(upstream_client: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK, unmodified, with ``base_url=<app>/v1`` and the admin's bearer token as key."""
    client = sdk_for(upstream_client)
    yield client
    await client.close()


def sdk_for(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """An SDK client on the app behind ``client``, with its credentials."""
    token = client.headers["Authorization"].removeprefix("Bearer ")
    http = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    return openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=token, http_client=http, max_retries=0)
