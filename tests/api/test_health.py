"""``/health``: a cached ready flag for anyone, the details (which can name internal hosts) for admins."""

from __future__ import annotations

import httpx

from ailab.config import Settings
from tests.conftest import ADMIN_PASSWORD, AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import configure


async def test_anonymous_callers_get_a_cached_ready_flag_and_admins_the_details(
    app_client: AppClientFactory, settings: Settings, upstream: FakeOpenAI
) -> None:
    overrides = {"openai_compat_base_url": upstream.base_url, "default_model": "openai-compat/echo"}
    async with app_client(configure(settings, **overrides)) as client:
        admin = dict(client.headers)
        anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")  # type: ignore[attr-defined]
        async with anonymous:
            upstream.fail_status = 500  # the upstream's error text would name where it runs
            answers = [await anonymous.get("/health") for _ in range(10)]
            assert {a.status_code for a in answers} == {200}
            assert answers[0].json() == {
                "status": "healthy",
                "version": answers[0].json()["version"],
                "database": "connected",
                "model": {"ready": False},
            }
            assert len(upstream.requests) <= 1  # one check for ten callers, not an upstream call each
            wrong = await anonymous.get("/health", headers={"Authorization": "Bearer not-a-token"})
            assert "detail" not in wrong.text and "pool" not in wrong.text

        details = (await client.get("/health", headers=admin)).json()
        assert details["model"]["ready"] is False
        assert "upstream error 500" in details["model"]["detail"]
        assert "database_pool" in details and "metrics" in details

        # An admin's browser, signed in with its session cookie, sees the details too.
        browser = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")  # type: ignore[attr-defined]
        async with browser:
            login = {"username": "admin", "password": ADMIN_PASSWORD}
            assert (await browser.post("/auth/session", json=login)).status_code == 200
            assert "database_pool" in (await browser.get("/health")).json()
