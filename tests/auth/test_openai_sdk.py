"""The official openai SDK, unmodified, against /v1 with an AI-Lab API token as its api_key."""

from __future__ import annotations

import httpx
import openai
import pytest


def sdk(client: httpx.AsyncClient, api_key: str) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=client.app)  # type: ignore[attr-defined]
    return openai.AsyncOpenAI(
        base_url="http://testserver/v1",
        api_key=api_key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport, base_url="http://testserver"),
    )


async def test_api_token_works_with_the_openai_sdk(client: httpx.AsyncClient) -> None:
    token = (await client.post("/auth/tokens", json={"name": "sdk"})).json()["token"]
    async with sdk(client, token) as good:
        models = await good.models.list()
        ids = [m.id for m in models.data]
        expected = (await client.get("/v1/models")).json()["data"]
        assert ids == [m["id"] for m in expected]

    async with sdk(client, "ailab_" + "x" * 43) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.models.list()
        assert caught.value.status_code == 401

    token_id = (await client.get("/auth/tokens")).json()["items"][0]["id"]
    assert (await client.delete(f"/auth/tokens/{token_id}")).status_code == 204
    async with sdk(client, token) as revoked:
        with pytest.raises(openai.AuthenticationError):
            await revoked.models.list()
