"""When the database stops answering, the API says 503, never an empty 200."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.exc import DBAPIError

from ailab.config import Settings
from tests.conftest import AppClientFactory
from tests.support.tcpproxy import TcpProxy


async def test_unreachable_database_is_503(
    postgres_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    proxy, proxied = await TcpProxy.in_front_of(postgres_url)
    async with app_client(make_settings(database_url=proxied)) as client:
        sid = (await client.post("/sessions", json={"title": "x"})).json()["id"]
        assert (await client.get("/health/ready")).status_code == 200
        await proxy.cut()

        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        history = await client.get(f"/conversation/{sid}")
        assert history.status_code == 503
        assert history.json()["detail"] == "database unavailable"
        assert "history" not in history.json()
        listing = await client.get("/sessions")
        assert listing.status_code == 503
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["database"] == "unreachable"


@pytest.mark.parametrize("sqlstate", ["57P01", "57P03", "08006"])
async def test_a_postgresql_restarting_is_503_not_500(
    sqlstate: str, settings: Settings, app_client: AppClientFactory
) -> None:
    class Refused(Exception):  # as asyncpg reports "the database system is shutting down / starting up"
        pass

    refused = Refused("the database system is starting up")
    refused.sqlstate = sqlstate  # type: ignore[attr-defined]
    async with app_client(settings) as client:

        async def restarting() -> None:
            raise DBAPIError("INSERT INTO messages ...", {}, refused)

        client.app.add_api_route("/restarting", restarting)  # type: ignore[attr-defined]
        response = await client.get("/restarting")
    assert response.status_code == 503
    assert response.json()["detail"] == "database unavailable"
    assert response.headers["retry-after"]
