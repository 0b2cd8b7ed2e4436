"""The two apps the gateway and chat tests run on: ``fast-lane`` serves the hot routes in the FastLane,
ahead of the middleware stack, ``routed`` through the stack and FastAPI's router. Were both the same
app, the doubled tests would check one copy of each handler twice and the other never."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from ailab.api.fastlane import FastLane
from ailab.api.middleware import RequestRecord
from ailab.app import create_app
from ailab.config import Settings
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI

HOT = [
    ("GET", "/v1/models", None),
    (
        "POST",
        "/v1/chat/completions",
        {"model": "openai-compat/echo", "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("POST", "/chat", {"message": "hi", "model": "openai-compat/echo", "pipeline": "direct"}),
]


async def test_each_variant_answers_the_hot_routes_in_its_own_lane(
    upstream_client: httpx.AsyncClient, fast_lane: bool
) -> None:
    app = upstream_client.app  # type: ignore[attr-defined]
    matched: list[object] = []

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)
        # The fast lane puts its own stand-in here; FastAPI's router puts the APIRoute it matched.
        matched.append(scope.get("route"))

    transport = httpx.ASGITransport(app=spy)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=upstream_client.headers
    ) as client:
        for method, path, body in HOT:
            response = await client.request(method, path, json=body)
            assert response.status_code == 200, (path, response.text)
    assert [isinstance(route, APIRoute) for route in matched] == [not fast_lane] * len(HOT)
    assert (app.fast_lane is not None) is fast_lane


def test_the_app_has_the_fast_lane_unless_told_otherwise(make_settings: Callable[..., Settings]) -> None:
    def lane(**kwargs: bool) -> FastLane | None:
        app = create_app(make_settings(), migrate=False, **kwargs)  # not started: no database needed
        assert FastLane not in [m.cls for m in app.user_middleware]  # never inside the stack
        return app.fast_lane

    assert isinstance(lane(), FastLane)
    assert lane(fast_lane=False) is None


COMPLETION = {"model": "openai-compat/echo", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_hot_route_gets_what_every_route_gets_in_either_lane(
    make_settings: Callable[..., Settings],
    database_url: str,
    upstream: FakeOpenAI,
    app_client: AppClientFactory,
) -> None:
    """Ids, the body limit, the access log's observers, CORS, the guard and the 500 of a bug: the lane does
    each of them itself, so the hot routes must answer as the stack does."""
    settings = make_settings(
        database_url=database_url,
        openai_compat_base_url=upstream.base_url,
        max_body_bytes=4096,
        cors_origins=["http://127.0.0.1:3000"],
    )
    async with app_client(settings) as client:
        app = client.app  # type: ignore[attr-defined]
        seen: list[RequestRecord] = []
        app.state.request_observers.append(seen.append)

        named = await client.post("/v1/chat/completions", json=COMPLETION, headers={"x-request-id": "mine-1"})
        assert named.status_code == 200 and named.headers["x-request-id"] == "mine-1"
        fresh = await client.post("/v1/chat/completions", json=COMPLETION)
        assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])

        big = {**COMPLETION, "messages": [{"role": "user", "content": "x" * 5000}]}
        declared = await client.post("/v1/chat/completions", json=big)
        assert declared.status_code == 413 and declared.headers["x-request-id"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b" " * 2000

        chunked = await client.post(
            "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413

        browser = await client.post(
            "/v1/chat/completions", json=COMPLETION, headers={"origin": "http://127.0.0.1:3000"}
        )
        assert browser.status_code == 200
        assert browser.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"

        # Refused before routing, in the stack as in the lane: no route template for the metrics.
        routes = ["/v1/chat/completions"] * 2 + ["<unmatched>"] * 2 + ["/v1/chat/completions"]
        assert [(r.route, r.status) for r in seen] == list(
            zip(routes, (200, 200, 413, 413, 200), strict=True)
        )
        assert seen[0].request_id == "mine-1"

        services = client.services  # type: ignore[attr-defined]

        async def bug(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("a bug")

        services.gateway.chat_completions = bug  # a fault no handler knows
        broken = await client.post("/v1/chat/completions", json=COMPLETION)
        assert broken.status_code == 500
        error = broken.json()
        assert error["error"]["code"] == "internal_error"
        assert error["request_id"] == broken.headers["x-request-id"]
        assert seen[-1].status == 500


async def test_with_auth_off_a_hot_route_serves_this_machine_only(
    make_settings: Callable[..., Settings],
    database_url: str,
    upstream: FakeOpenAI,
    app_client: AppClientFactory,
) -> None:
    settings = make_settings(database_url=database_url, openai_compat_base_url=upstream.base_url, auth="off")
    async with app_client(settings, login=False, base_url="http://127.0.0.1:8001") as client:
        assert (await client.post("/v1/chat/completions", json=COMPLETION)).status_code == 200
        elsewhere = httpx.ASGITransport(app=client.app, client=("192.0.2.7", 50000))  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=elsewhere, base_url="http://127.0.0.1:8001") as remote:
            refused = await remote.post("/v1/chat/completions", json=COMPLETION)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden" and refused.headers["x-request-id"]
