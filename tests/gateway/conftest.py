"""Fixtures of the gateway tests: the app with ``openai-compat`` on a recording fake upstream, and the
official ``openai`` SDK talking to the app in process (httpx's ASGI transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import openai
import pytest

from ailab.config import Settings
from ailab.providers.registry import GenerationRecord
from tests.conftest import AppClientFactory
from tests.support.openai_upstream import FakeUpstream, fake_upstream


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with fake_upstream() as state:
        yield state


@pytest.fixture
async def gateway_client(
    make_settings: Callable[..., Settings],
    database_url: str,
    upstream: FakeUpstream,
    app_client: AppClientFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url=database_url, openai_compat_base_url=upstream.base_url)
    async with app_client(settings) as client:
        yield client


@pytest.fixture
def records(gateway_client: httpx.AsyncClient) -> list[GenerationRecord]:
    """Every GenerationRecord the app reports from now on."""
    seen: list[GenerationRecord] = []
    gateway_client.services.providers.observers.append(seen.append)  # type: ignore[attr-defined]
    return seen


@pytest.fixture
async def sdk(gateway_client: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK, unmodified, with ``base_url=<app>/v1`` and the admin's bearer token as key."""
    client = sdk_for(gateway_client)
    yield client
    await client.close()


def sdk_for(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """An SDK client on the app behind ``client``, with its credentials."""
    token = client.headers["Authorization"].removeprefix("Bearer ")
    http = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    return openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=token, http_client=http, max_retries=0)
