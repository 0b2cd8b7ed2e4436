"""Credentials over their life: login, expiry, API tokens and their revocation, disabled, changed and
deleted users, the admin role, and the throttle on failed logins."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest
from sqlalchemy import event, text

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.tables import ChatSession
from ailab.services.auth.throttle import ADDRESS_DELAY_S
from ailab.services.masterkey import derive_key
from tests.auth.conftest import PASSWORD_A, Account, login
from tests.conftest import ADMIN_PASSWORD, AppClientFactory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signing_key(client: httpx.AsyncClient) -> str:
    return derive_key(client.services.master_keys[0], "ailab access tokens")  # type: ignore[attr-defined]


async def test_login_and_me(anon: httpx.AsyncClient) -> None:
    headers = await login(anon, "admin", ADMIN_PASSWORD)
    me = await anon.get("/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["username"] == "admin"
    assert me.json()["role"] == "admin"
    assert "password_hash" not in me.text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "admin", "password": "wrong-password"}, 401),
        ({"username": "nobody", "password": ADMIN_PASSWORD}, 401),
        ({"username": "admin"}, 422),
        ({"username": "", "password": "x"}, 422),
    ],
)
async def test_bad_logins(anon: httpx.AsyncClient, body: dict[str, str], status: int) -> None:
    response = await anon.post("/auth/login", json=body)
    assert response.status_code == status
    assert "detail" in response.json()
    assert "access_token" not in response.text


async def test_malformed_login_body_is_400(anon: httpx.AsyncClient) -> None:
    response = await anon.post(
        "/auth/login", content=b'{"username": "admin",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_expired_and_foreign_tokens_are_refused(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    me = (await client.get("/auth/me")).json()
    now = time.time()
    key = signing_key(client)
    expired = jwt.encode({"sub": me["id"], "iat": now - 120, "exp": int(now) - 60}, key, algorithm="HS256")
    response = await anon.get("/auth/me", headers=bearer(expired))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]

    fresh = jwt.encode({"sub": me["id"], "iat": now, "exp": int(now) + 60}, key, algorithm="HS256")
    assert (await anon.get("/auth/me", headers=bearer(fresh))).status_code == 200
    unknown_user = jwt.encode({"sub": "no-such-id", "iat": now, "exp": int(now) + 60}, key, algorithm="HS256")
    assert (await anon.get("/auth/me", headers=bearer(unknown_user))).status_code == 401
    no_expiry = jwt.encode({"sub": me["id"], "iat": now}, key, algorithm="HS256")
    assert (await anon.get("/auth/me", headers=bearer(no_expiry))).status_code == 401


async def test_login_token_expires_after_the_ttl(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=database_url, access_token_ttl_seconds=60)) as client:
        response = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert response.json()["expires_in"] == 60
        claims = jwt.decode(response.json()["access_token"], signing_key(client), algorithms=["HS256"])
        assert 59 <= claims["exp"] - claims["iat"] <= 60


async def test_api_token_lifecycle(
    client: httpx.AsyncClient, alice: Account, anon: httpx.AsyncClient
) -> None:
    created = await anon.post("/auth/tokens", json={"name": "laptop"}, headers=alice.headers)
    assert created.status_code == 201
    body = created.json()
    assert set(body) >= {"id", "name", "token", "created_at"}
    token = body["token"]
    assert token.startswith("ailab_")

    me = await anon.get("/auth/me", headers=bearer(token))
    assert me.json()["username"] == "alice"
    sid = (await anon.post("/sessions", json={"title": "via token"}, headers=bearer(token))).json()["id"]
    assert (await anon.get(f"/sessions/{sid}", headers=alice.headers)).status_code == 200

    listed = await anon.get("/auth/tokens", headers=alice.headers)
    assert [t["id"] for t in listed.json()["items"]] == [body["id"]]
    assert token not in listed.text
    assert token[len("ailab_") + 4 :] not in listed.text
    assert "token_hash" not in listed.text
    assert listed.json()["items"][0]["last_used_at"] is not None

    assert (await anon.delete(f"/auth/tokens/{body['id']}", headers=alice.headers)).status_code == 204
    refused = await anon.get("/auth/me", headers=bearer(token))  # at once, although it was just cached
    assert refused.status_code == 401
    assert (await anon.delete(f"/auth/tokens/{body['id']}", headers=alice.headers)).status_code == 204
    assert (await anon.delete("/auth/tokens/no-such-token", headers=alice.headers)).status_code == 404
    assert (await anon.get("/auth/tokens", headers=alice.headers)).json()["items"][0]["revoked_at"]


@pytest.mark.parametrize("name", ["", " ", "x" * 129])
async def test_bad_token_names(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/auth/tokens", json={"name": name})
    assert response.status_code == 422
    assert (await client.get("/auth/tokens")).json()["items"] == []


async def test_tokens_are_stored_hashed(client: httpx.AsyncClient) -> None:
    token = (await client.post("/auth/tokens", json={"name": "ci"})).json()["token"]
    services = client.services  # type: ignore[attr-defined]
    raw = await _database_text(services.db)
    assert token not in raw
    assert ADMIN_PASSWORD not in raw


async def _database_text(db: Database) -> str:
    async with db.read() as session:
        rows = (await session.execute(text("SELECT * FROM api_tokens"))).all()
        rows += (await session.execute(text("SELECT * FROM users"))).all()
    return repr(rows)


async def test_disabled_user_is_refused_at_once(
    client: httpx.AsyncClient, alice: Account, anon: httpx.AsyncClient
) -> None:
    api = bearer((await anon.post("/auth/tokens", json={"name": "t"}, headers=alice.headers)).json()["token"])
    assert (await anon.get("/auth/me", headers=alice.headers)).status_code == 200
    assert (await anon.get("/auth/me", headers=api)).status_code == 200

    disabled = await client.patch("/users/alice", json={"disabled": True})
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    assert (await anon.get("/auth/me", headers=alice.headers)).status_code == 401
    assert (await anon.get("/auth/me", headers=api)).status_code == 401
    relogin = await anon.post("/auth/login", json={"username": "alice", "password": PASSWORD_A})
    assert relogin.status_code == 401

    assert (await client.patch("/users/alice", json={"disabled": False})).status_code == 200
    assert (await anon.get("/auth/me", headers=api)).status_code == 200
    assert (await anon.get("/auth/me", headers=alice.headers)).status_code == 401  # ended with the disable
    assert (await anon.get("/auth/me", headers=await login(anon, "alice", PASSWORD_A))).status_code == 200


async def test_password_change_ends_sessions(
    client: httpx.AsyncClient, alice: Account, anon: httpx.AsyncClient
) -> None:
    changed = await client.patch("/users/alice", json={"password": "a-brand-new-password"})
    assert changed.status_code == 200
    assert (await anon.get("/auth/me", headers=alice.headers)).status_code == 401
    old = await anon.post("/auth/login", json={"username": "alice", "password": PASSWORD_A})
    assert old.status_code == 401
    assert (
        await anon.get("/auth/me", headers=await login(anon, "alice", "a-brand-new-password"))
    ).status_code == 200


async def test_deleting_a_user_deletes_their_sessions(
    client: httpx.AsyncClient, alice: Account, anon: httpx.AsyncClient
) -> None:
    sid = (await anon.post("/sessions", json={"title": "doomed"}, headers=alice.headers)).json()["id"]
    await anon.post(f"/sessions/{sid}/messages", json={"role": "user", "content": "x"}, headers=alice.headers)
    assert (await client.delete("/users/alice")).status_code == 204
    assert (await anon.get("/auth/me", headers=alice.headers)).status_code == 401
    services = client.services  # type: ignore[attr-defined]
    async with services.db.read() as session:
        assert await session.get(ChatSession, sid) is None
    assert "alice" not in (await client.get("/users")).text
    assert (await client.delete("/users/alice")).status_code == 404


async def test_user_management(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/users", json={"username": "carol", "password": "carol-password", "role": "admin"}
    )
    assert created.status_code == 201
    assert created.json()["role"] == "admin"
    assert "password" not in created.text
    listed = (await client.get("/users")).json()["items"]
    assert [u["username"] for u in listed] == ["admin", "carol"]
    demoted = await client.patch("/users/carol", json={"role": "user"})
    assert demoted.json()["role"] == "user"
    assert (await client.patch("/users/nobody", json={"disabled": True})).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "admin", "password": "another-password"}, 409),
        ({"username": "dave", "password": "short"}, 422),
        ({"username": "dave", "password": "long-enough", "role": "root"}, 422),
        ({"username": "bad name!", "password": "long-enough"}, 422),
        ({"username": "dave"}, 422),
    ],
)
async def test_bad_user_creation_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, str], status: int
) -> None:
    response = await client.post("/users", json=body)
    assert response.status_code == status, response.text
    assert [u["username"] for u in (await client.get("/users")).json()["items"]] == ["admin"]


async def test_the_last_admin_stays(client: httpx.AsyncClient) -> None:
    for method, body in (("PATCH", {"disabled": True}), ("PATCH", {"role": "user"}), ("DELETE", None)):
        response = await client.request(method, "/users/admin", json=body)
        assert response.status_code == 409, response.text
        assert "last active admin" in response.json()["detail"]
    assert (await client.get("/auth/me")).json()["role"] == "admin"
    await client.post("/users", json={"username": "second", "password": "second-admin", "role": "admin"})
    assert (await client.patch("/users/admin", json={"role": "user"})).status_code == 200


async def test_ordinary_users_get_403_on_admin_routes(client: httpx.AsyncClient, alice: Account) -> None:
    openapi = client.app.openapi()  # type: ignore[attr-defined]
    admin_only = [
        (method.upper(), path.replace("{name}", "alice").replace("{service}", "openai"))
        for path, item in openapi["paths"].items()
        if path.startswith(("/users", "/api-keys", "/metrics"))
        for method in item
    ]
    assert ("GET", "/users") in admin_only
    for method, url in admin_only:
        body = {"json": {}} if method in {"POST", "PATCH", "PUT"} else {}
        response = await client.request(method, url, headers=alice.headers, **body)
        assert response.status_code == 403, f"{method} {url}: {response.status_code}"
    assert (await client.get("/users", headers=alice.headers)).json() == {
        "detail": "this needs the admin role"
    }
    assert [u["username"] for u in (await client.get("/users")).json()["items"]] == ["admin", "alice"]


async def test_secrets_stay_out_of_the_logs(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await anon.post("/auth/login", json={"username": "admin", "password": "guess-number-one"})
    token = (await client.post("/auth/tokens", json={"name": "t"})).json()["token"]
    await anon.get("/auth/me", headers=bearer(token))
    await client.post("/users", json={"username": "erin", "password": "erin-password"})
    assert "guess-number-one" not in caplog.text
    assert token not in caplog.text
    assert "erin-password" not in caplog.text


@pytest.fixture
async def throttled(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url=database_url, login_max_failures=3, login_lockout_seconds=600)
    async with app_client(settings, login=False) as client:
        yield client


def from_address(client: httpx.AsyncClient, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=client.app, client=(host, 40000))  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_repeated_failures_for_a_name_are_throttled(throttled: httpx.AsyncClient) -> None:
    wrong = {"username": "admin", "password": "not-the-password"}
    right = {"username": "admin", "password": ADMIN_PASSWORD}
    async with from_address(throttled, "10.0.0.1") as one, from_address(throttled, "10.0.0.2") as two:
        for _ in range(3):
            assert (await one.post("/auth/login", json=wrong)).status_code == 401
        locked = await one.post("/auth/login", json=right)
        assert locked.status_code == 429
        assert 590 <= int(locked.headers["retry-after"]) <= 600
        assert "detail" in locked.json()
        assert "access_token" not in locked.text
        # The name is locked from every address; other names are not.
        assert (await two.post("/auth/login", json=right)).status_code == 429
        await throttled.post("/users", json={})  # anonymous: 401, changes nothing
        services = throttled.services  # type: ignore[attr-defined]
        await services.auth.create_user("frank", "frank-password")
        ok = await two.post("/auth/login", json={"username": "frank", "password": "frank-password"})
        assert ok.status_code == 200


async def test_an_address_over_its_limit_is_slowed_down_never_refused(throttled: httpx.AsyncClient) -> None:
    right = {"username": "admin", "password": ADMIN_PASSWORD}
    async with from_address(throttled, "10.0.0.9") as sprayer, from_address(throttled, "10.0.0.8") as other:
        for i in range(12):  # 3 failures x the address factor 4, each for a different name
            response = await sprayer.post(
                "/auth/login", json={"username": f"user{i}", "password": "guess-1234"}
            )
            assert response.status_code == 401
        started = time.monotonic()
        slowed = await sprayer.post("/auth/login", json={"username": "user99", "password": "guess-1234"})
        assert slowed.status_code == 401
        assert time.monotonic() - started >= ADDRESS_DELAY_S  # answered, but late
        # Behind a NAT or a proxy, the sprayer's address is everyone's: the right password of a name that
        # is not locked still gets in (late), and other addresses are not slowed at all.
        assert (await sprayer.post("/auth/login", json=right)).status_code == 200
        started = time.monotonic()
        assert (await other.post("/auth/login", json=right)).status_code == 200
        assert time.monotonic() - started < ADDRESS_DELAY_S


async def test_a_burst_of_concurrent_guesses_is_counted_before_any_is_checked(
    throttled: httpx.AsyncClient,
) -> None:
    wrong = {"username": "admin", "password": "not-the-password"}
    right = {"username": "admin", "password": ADMIN_PASSWORD}
    async with from_address(throttled, "10.0.0.5") as guesser:
        burst = await asyncio.gather(*(guesser.post("/auth/login", json=wrong) for _ in range(40)))
        statuses = sorted(r.status_code for r in burst)
        assert statuses == [401] * 3 + [429] * 37  # the limit is 3: only 3 ever reach the password check
        assert (
            await guesser.post("/auth/login", json=right)
        ).status_code == 429  # locked, even the right one


async def test_success_resets_the_count_for_the_name(throttled: httpx.AsyncClient) -> None:
    wrong = {"username": "admin", "password": "not-the-password"}
    right = {"username": "admin", "password": ADMIN_PASSWORD}
    async with from_address(throttled, "10.0.0.3") as c:
        for _ in range(2):
            assert (await c.post("/auth/login", json=wrong)).status_code == 401
        assert (await c.post("/auth/login", json=right)).status_code == 200
        for _ in range(2):
            assert (await c.post("/auth/login", json=wrong)).status_code == 401
        assert (await c.post("/auth/login", json=right)).status_code == 200


async def test_auth_off_acts_as_an_active_admin(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=database_url, auth="off")
    async with app_client(settings, login=False, base_url="http://localhost:8001") as client:
        assert (await client.get("/auth/me")).json()["username"] == "admin"
        services = client.services  # type: ignore[attr-defined]
        await services.auth.create_user("root", "root-password", "admin")
        await services.auth.update_user("admin", disabled=True)
        assert (await client.get("/auth/me")).json()["username"] == "root"


async def test_credentials_on_both_databases(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    """The parts that lean on stored timestamps and cascades, on SQLite and on PostgreSQL."""
    settings = make_settings(database_url=any_database_url)
    async with app_client(settings) as client, from_address(client, "127.0.0.1") as anon:
        await client.post("/users", json={"username": "alice", "password": PASSWORD_A})
        session_token = await login(anon, "alice", PASSWORD_A)
        api = bearer(
            (await anon.post("/auth/tokens", json={"name": "t"}, headers=session_token)).json()["token"]
        )
        sid = (await anon.post("/sessions", json={}, headers=api)).json()["id"]

        assert (await client.patch("/users/alice", json={"password": "new-password-1"})).status_code == 200
        assert (await anon.get("/auth/me", headers=session_token)).status_code == 401
        assert (await anon.get("/auth/me", headers=api)).status_code == 200
        fresh = await login(anon, "alice", "new-password-1")
        assert (await anon.get(f"/sessions/{sid}", headers=fresh)).status_code == 200

        token_id = (await anon.get("/auth/tokens", headers=fresh)).json()["items"][0]["id"]
        assert (await anon.delete(f"/auth/tokens/{token_id}", headers=fresh)).status_code == 204
        assert (await anon.get("/auth/me", headers=api)).status_code == 401

        assert (await client.delete("/users/alice")).status_code == 204
        assert (await anon.get("/auth/me", headers=fresh)).status_code == 401
        async with client.services.db.read() as session:  # type: ignore[attr-defined]
            assert await session.get(ChatSession, sid) is None


async def test_replicas_share_the_login_counts_through_redis(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory, redis_url: str
) -> None:
    settings = make_settings(
        database_url=database_url, login_max_failures=3, login_lockout_seconds=600, redis_url=redis_url
    )
    name = f"user-{uuid.uuid4().hex[:12]}"  # the shared Redis may hold other tests' counts
    wrong = {"username": name, "password": "not-the-password"}
    async with app_client(settings, login=False) as one, app_client(settings, login=False) as two:
        services = one.services  # type: ignore[attr-defined]
        await services.auth.create_user(name, "the-right-password")
        for replica in (one, two, one):
            assert (await replica.post("/auth/login", json=wrong)).status_code == 401
        right = await two.post("/auth/login", json={"username": name, "password": "the-right-password"})
        assert right.status_code == 429  # the third failure, on another replica, locked it for both


async def test_the_anonymous_path_costs_no_more_than_a_tokens(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    # With AILAB_AUTH=off every request acts as the admin; finding the admin was a database read per
    # request (the gateway ran at a fifth of the token path's rate). It is cached like a token now.
    settings = make_settings(database_url=database_url, auth="off")
    async with app_client(settings, login=False, base_url="http://localhost:8001") as client:
        engine = client.services.db.engine.sync_engine  # type: ignore[attr-defined]
        statements: list[str] = []

        def count(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            for _ in range(20):
                assert (await client.get("/sessions")).status_code == 200  # a route that reads no user
        finally:
            event.remove(engine, "before_cursor_execute", count)
    user_reads = [s for s in statements if "FROM users" in s]
    assert len(user_reads) <= 1, f"{len(user_reads)} reads of the users table for 20 requests"
