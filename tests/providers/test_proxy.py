"""Upstream calls through the proxy the environment names (HTTP_PROXY / NO_PROXY)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ailab.errors import ProviderUnavailable
from ailab.providers import openai_compat
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.conftest import ProviderFactory
from tests.support.postgres import free_port


class ForwardProxy:
    """A plain-HTTP forward proxy: relays absolute-form requests to ``target`` and records them."""

    def __init__(self, target: str) -> None:
        self.target = target  # the origin every request really goes to
        self.seen: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def relay(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(f"{request.method} {request.url}")
        async with (
            aiohttp.ClientSession() as client,
            client.request(
                request.method,
                f"{self.target}{request.rel_url}",
                data=await request.read(),
                headers=request.headers,
            ) as upstream,
        ):
            return web.Response(
                body=await upstream.read(), status=upstream.status, content_type=upstream.content_type
            )

    async def __aenter__(self) -> ForwardProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


pytestmark = pytest.mark.usefixtures("clean_proxy_env")  # each test sets the proxy variables it means


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(any_key=True, models=["tiny"]) as server:
        yield server


@pytest.fixture
async def proxied(
    upstream: FakeOpenAI, build: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ForwardProxy, Any]]:
    """The upstream behind the proxy ``HTTP_PROXY`` names, and a provider at a name only the proxy can
    reach (the provider must not try to resolve it itself)."""
    async with ForwardProxy(upstream.base_url.removesuffix("/v1")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        yield proxy, build(openai_compat.PLUGIN, openai_compat_base_url="http://models.internal.test:8000/v1")


async def test_requests_go_through_the_proxy(proxied: tuple[ForwardProxy, Any]) -> None:
    proxy, provider = proxied
    assert [m.id for m in await provider.list_models()] == ["tiny"]
    assert proxy.seen == ["GET http://models.internal.test:8000/v1/models"]


async def test_no_proxy_exempts_an_upstream(
    upstream: FakeOpenAI, build: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    provider = build(openai_compat.PLUGIN, openai_compat_base_url=upstream.base_url)
    assert [m.id for m in await provider.list_models()] == ["tiny"]


async def test_an_unreachable_proxy_is_named_in_the_error(
    upstream: FakeOpenAI, build: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://user:secret@127.0.0.1:{port}")
    provider = build(openai_compat.PLUGIN, openai_compat_base_url=upstream.base_url)
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.list_models()
    assert f"proxy http://127.0.0.1:{port}" in caught.value.message
    assert "secret" not in caught.value.message


async def test_the_pass_through_goes_through_the_proxy_too(proxied: tuple[ForwardProxy, Any]) -> None:
    proxy, provider = proxied
    payload = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    answer = await provider.forward_chat_completions(payload)
    assert answer.status == 200
    assert b"chat.completion" in b"".join([chunk async for chunk in answer.body])
    assert proxy.seen == ["POST http://models.internal.test:8000/v1/chat/completions"]
