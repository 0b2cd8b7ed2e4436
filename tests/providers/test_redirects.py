"""No upstream call follows a redirect: it would carry the key headers and the prompt to another origin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ailab.errors import ProviderUnavailable
from ailab.providers import anthropic, azure, gemini, openai
from ailab.providers.base import ChatMessage, ChatRequest
from tests.providers.conftest import ProviderFactory
from tests.support.postgres import free_port


class Servers:
    """A server that redirects everything to the other, which records what reaches it."""

    def __init__(self) -> None:
        self.reached: list[web.Request] = []
        self.redirecting = ""
        self.elsewhere = ""


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    found = Servers()

    async def record(request: web.Request) -> web.Response:
        found.reached.append(request)
        return web.json_response({"choices": []})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(found.elsewhere + request.path_qs)

    runners = []
    for handler in (redirect, record):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        if handler is redirect:
            found.redirecting = f"http://127.0.0.1:{port}"
        else:
            found.elsewhere = f"http://127.0.0.1:{port}"
    yield found
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("create", "settings", "model"),
    [
        (
            openai.PLUGIN,
            {"openai_base_url": "{base}/v1", "openai_api_key": "sk-redirected-0123456789"},
            "gpt-4o",
        ),
        (
            anthropic.PLUGIN,
            {"anthropic_base_url": "{base}", "anthropic_api_key": "sk-ant-0123456789abcdef"},
            "c",
        ),
        (gemini.PLUGIN, {"gemini_base_url": "{base}", "gemini_api_key": "AIza0123456789abcdef0123"}, "g"),
        (
            azure.PLUGIN,
            {"azure_base_url": "{base}", "azure_api_key": "0123456789abcdef", "azure_deployments": ["d"]},
            "d",
        ),
    ],
    ids=["openai", "anthropic", "gemini", "azure"],
)
async def test_a_redirect_is_an_error_and_nothing_reaches_the_other_origin(
    servers: Servers, build: ProviderFactory, create: object, settings: dict[str, object], model: str
) -> None:
    values = {k: v.format(base=servers.redirecting) if isinstance(v, str) else v for k, v in settings.items()}
    provider = build(create, **values)
    request = ChatRequest(model=model, messages=[ChatMessage("user", "a private prompt")])
    with pytest.raises(
        ProviderUnavailable, match=f"a redirect to {servers.elsewhere}: AI-Lab follows no redirects"
    ):
        await provider.chat(request)
    with pytest.raises(ProviderUnavailable, match="follows no redirects"):
        async for _ in provider.stream(request):
            pass
    assert servers.reached == []
