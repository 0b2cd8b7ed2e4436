"""The vault through the API and the services: storage, masking, tests against a fake provider, delete."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from ailab.config import ConfigError, Settings
from ailab.db.tables import ApiKey
from ailab.providers.base import Credential
from ailab.services.auth.accounts import Principal
from ailab.services.container import Services
from ailab.services.vault.store import Vault
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.support.postgres import free_port
from tests.vault.conftest import last_bearer, openai_key


async def stored_rows(services: Services) -> dict[str, ApiKey]:
    async with services.db.read() as session:
        return {row.service: row for row in (await session.scalars(select(ApiKey))).all()}


async def test_store_list_replace_delete(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=any_database_url)
    key = openai_key()
    async with app_client(settings) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        r = await client.post("/api-keys", json={"service_name": "openai", "api_key": key})
        assert r.status_code == 200, r.text
        assert key not in r.text
        assert r.json()["masked_key"] == "••••" + key[-4:]

        listed = (await client.get("/api-keys")).json()
        assert key not in str(listed)
        assert "google" not in listed["supported_services"]
        assert {
            "openai",
            "anthropic",
            "gemini",
            "azure",
            "cohere",
            "huggingface",
            "ollama",
            "openai-compat",
        } == set(listed["supported_services"])
        assert set(listed["formats"]) == set(listed["supported_services"])
        assert "sk-" in listed["formats"]["openai"]["expected"]
        assert listed["formats"]["azure"]["config"]["endpoint"]["required"] is True
        (entry,) = listed["configured_services"]
        assert entry["service_name"] == "openai"
        assert entry["masked_key"] == "••••" + key[-4:]
        assert entry["created_at"]
        assert entry["updated_at"]
        assert entry["last_tested_at"] is None
        assert entry["last_test_result"] is None

        # At rest: versioned Fernet ciphertext under the configured master key, never the key itself.
        row = (await stored_rows(services))["openai"]
        assert row.ciphertext.startswith("v1:")
        assert key not in row.ciphertext
        master = settings.master_key.get_secret_value()  # type: ignore[union-attr]
        assert Fernet(master.encode()).decrypt(row.ciphertext[3:].encode()).decode() == key
        assert master not in row.ciphertext

        # Upsert: same row, new secret; created_at kept.
        new_key = openai_key()
        r = await client.post("/api-keys", json={"service_name": "OpenAI", "api_key": new_key})
        assert r.status_code == 200
        (entry2,) = (await client.get("/api-keys")).json()["configured_services"]
        assert entry2["masked_key"] == "••••" + new_key[-4:]
        assert entry2["created_at"] == entry["created_at"]
        assert entry2["updated_at"] >= entry["updated_at"]
        assert (await services.vault.get("openai")) == Credential(new_key, {})

        # Delete really deletes: the row is gone and the providers no longer see the key.
        r = await client.delete("/api-keys/openai")
        assert r.status_code == 200
        assert await stored_rows(services) == {}
        assert await services.vault.get("openai") is None
        assert (await client.get("/api-keys")).json()["configured_services"] == []
        assert (await client.delete("/api-keys/openai")).status_code == 404


async def test_azure_and_ollama_keep_their_config(client: httpx.AsyncClient) -> None:
    azure_key = "0123456789abcdef" * 2
    config = {
        "endpoint": "https://my-res.openai.azure.com/",
        "deployment": "gpt4o",
        "api_version": "2024-10-21",
    }
    r = await client.post("/api-keys", json={"service_name": "azure", "api_key": azure_key, "config": config})
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api-keys", json={"service_name": "ollama", "config": {"base_url": "http://127.0.0.1:11434"}}
    )
    assert r.status_code == 200, r.text
    listed = {e["service_name"]: e for e in (await client.get("/api-keys")).json()["configured_services"]}
    assert listed["azure"]["config"] == {**config, "endpoint": "https://my-res.openai.azure.com"}
    assert listed["ollama"]["masked_key"] is None
    vault: Vault = client.services.vault  # type: ignore[attr-defined]
    credential = await vault.get("azure")
    assert credential is not None
    assert credential.api_key == azure_key
    assert credential.config["deployment"] == "gpt4o"
    assert credential.config["endpoint"] == "https://my-res.openai.azure.com"
    ollama = await vault.get("ollama")
    assert ollama == Credential(None, {"base_url": "http://127.0.0.1:11434"})


async def test_google_is_an_alias_of_gemini(client: httpx.AsyncClient) -> None:
    key = "AIza" + "B" * 35
    r = await client.post("/api-keys", json={"service_name": "google", "api_key": key})
    assert r.status_code == 200
    assert r.json()["service_name"] == "gemini"
    vault: Vault = client.services.vault  # type: ignore[attr-defined]
    assert (await vault.get("gemini")).api_key == key  # type: ignore[union-attr]
    assert (await vault.get("google")).api_key == key  # type: ignore[union-attr]


async def test_test_route_valid_invalid_unreachable(
    any_database_url: str,
    make_settings: Callable[..., Settings],
    app_client: AppClientFactory,
    openai_server: FakeOpenAI,
) -> None:
    settings = make_settings(database_url=any_database_url, openai_base_url=openai_server.base_url)
    async with app_client(settings) as client:
        await client.post("/api-keys", json={"service_name": "openai", "api_key": openai_server.api_key})
        r = await client.post("/api-keys/openai/test")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["service_name"] == "openai"
        assert body["result"] == "valid", body
        assert last_bearer(openai_server) == openai_server.api_key
        entry = (await client.get("/api-keys")).json()["configured_services"][0]
        assert entry["last_test_result"] == "valid"
        assert entry["last_tested_at"] == body["tested_at"]

        wrong = openai_key()
        await client.post("/api-keys", json={"service_name": "openai", "api_key": wrong})
        r = await client.post("/api-keys/openai/test")
        assert r.status_code == 200
        body = r.json()
        assert body["result"] == "invalid", body
        assert "401" in body["detail"]
        assert last_bearer(openai_server) == wrong
        assert wrong not in r.text
        entry = (await client.get("/api-keys")).json()["configured_services"][0]
        assert entry["last_test_result"] == "invalid"

        closed = f"http://127.0.0.1:{free_port()}/v1"
        await client.post(
            "/api-keys",
            json={"service_name": "openai", "api_key": openai_server.api_key, "config": {"base_url": closed}},
        )
        r = await client.post("/api-keys/openai/test")
        assert r.status_code == 200
        assert r.json()["result"] == "unreachable", r.json()
        assert openai_server.api_key not in r.text

        # No key anywhere: 404, not a test of nothing.
        await client.delete("/api-keys/openai")
        assert (await client.post("/api-keys/openai/test")).status_code == 404


async def test_openai_compatible_server_key_test(
    client: httpx.AsyncClient, openai_server: FakeOpenAI
) -> None:
    r = await client.post(
        "/api-keys",
        json={
            "service_name": "openai-compat",
            "api_key": openai_server.api_key,
            "config": {"base_url": openai_server.base_url},
        },
    )
    assert r.status_code == 200, r.text
    r = await client.post("/api-keys/openai-compat/test")
    assert r.json()["result"] == "valid", r.json()


async def test_providers_read_the_vault_first_then_settings(
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: AppClientFactory,
    openai_server: FakeOpenAI,
) -> None:
    env_key = openai_key()
    settings = make_settings(
        database_url=database_url, openai_base_url=openai_server.base_url, openai_api_key=env_key
    )
    async with app_client(settings) as client:
        services: Services = client.services  # type: ignore[attr-defined]
        provider = services.providers.providers["openai"]
        assert (await services.vault.get("openai")).api_key == env_key  # type: ignore[union-attr]
        listed = (await client.get("/api-keys")).json()["configured_services"]
        assert [(e["service_name"], e["source"], e["masked_key"]) for e in listed] == [
            ("openai", "environment", "••••" + env_key[-4:])
        ]
        assert env_key not in str(listed)

        await client.post("/api-keys", json={"service_name": "openai", "api_key": openai_server.api_key})
        models = await provider.list_models()  # the cache was cleared by the set: the vault key at once
        assert {m.id for m in models} == {"gpt-4o-mini", "gpt-4o"}
        assert last_bearer(openai_server) == openai_server.api_key

        await client.delete("/api-keys/openai")
        assert (await services.vault.get("openai")).api_key == env_key  # type: ignore[union-attr]


async def test_only_admins_manage_keys(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    user = await services.auth.create_user("bob", "a-long-password-for-bob")
    token = services.auth.issue_access_token(Principal(user.id, user.name, user.role))
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api-keys", headers=headers)).status_code == 403
    r = await client.post(
        "/api-keys", json={"service_name": "openai", "api_key": openai_key()}, headers=headers
    )
    assert r.status_code == 403
    assert await stored_rows(services) == {}
    anonymous = await client.get("/api-keys", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert (await client.post("/api-keys/rotate", headers=headers)).status_code == 403


async def test_rotating_the_master_key_keeps_every_key_readable(client: httpx.AsyncClient) -> None:
    services: Services = client.services  # type: ignore[attr-defined]
    key = openai_key()
    await client.post("/api-keys", json={"service_name": "openai", "api_key": key})
    before = (await stored_rows(services))["openai"].ciphertext
    rotated = await client.post("/api-keys/rotate")
    assert rotated.status_code == 200, rotated.text
    report = rotated.json()
    assert report["reencrypted"] == 1 and report["source"] == "AILAB_MASTER_KEY"
    assert "AILAB_MASTER_KEY" in report["message"]
    after = (await stored_rows(services))["openai"].ciphertext
    assert after != before and key not in after  # re-encrypted (a new token), never plaintext
    assert (await services.vault.get("openai")).api_key == key  # type: ignore[union-attr]


async def test_app_refuses_to_start_with_another_master_key(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=database_url)) as client:
        await client.post("/api-keys", json={"service_name": "openai", "api_key": openai_key()})
    other = make_settings(database_url=database_url, master_key=Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="AILAB_MASTER_KEY"):
        async with app_client(other):
            pass
