"""The two apps the gateway and chat tests run on: ``fast-lane`` serves the hot routes in the FastLane
middleware, ``routed`` through FastAPI's router. Were both the same app, the doubled tests would check
one copy of each handler twice and the other never."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from ailab.api.fastlane import FastLane
from ailab.app import create_app
from ailab.config import Settings

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
    assert (FastLane in [m.cls for m in app.user_middleware]) is fast_lane


def test_the_app_has_the_fast_lane_unless_told_otherwise(make_settings: Callable[..., Settings]) -> None:
    def lanes(**kwargs: bool) -> list[bool]:
        app = create_app(make_settings(), migrate=False, **kwargs)  # not started: no database needed
        return [m.cls is FastLane for m in app.user_middleware]

    assert lanes().count(True) == 1
    assert lanes(fast_lane=False).count(True) == 0
