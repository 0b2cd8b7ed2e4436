"""The API-key vault over HTTP (admin only): store, list (masked), test and delete provider keys."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ailab.api.deps import AdminUser, ServicesDep
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.keys import KeyCreate, KeyDeleted, KeyList, KeyOut, KeyStored, KeyTest
from ailab.services.vault.store import Vault

router = APIRouter(tags=["api-keys"], responses=problems(*COMMON_PROBLEMS, 404, 409))
ServiceName = Annotated[str, Path(max_length=64, description="a service name, e.g. openai")]


async def get_vault(services: ServicesDep) -> Vault:
    return services.vault


VaultDep = Annotated[Vault, Depends(get_vault)]


@router.post("/api-keys")
async def store_key(body: KeyCreate, _admin: AdminUser, vault: VaultDep) -> KeyStored:
    """Store or replace the key of a service; 422 saying what was expected when it does not fit."""
    info = await vault.set(body.service_name, body.api_key, body.config)
    return KeyStored(message=f"API key for {info.service_name} stored", **asdict(info))


@router.get("/api-keys")
async def list_keys(_admin: AdminUser, vault: VaultDep) -> KeyList:
    """The configured services (keys masked: last 4 characters only) and the supported ones."""
    infos = await vault.list_keys()
    return KeyList(
        configured_services=[KeyOut.model_validate(info) for info in infos],
        supported_services=vault.supported_services(),
    )


@router.post("/api-keys/{service}/test")
async def try_key(service: ServiceName, _admin: AdminUser, vault: VaultDep) -> KeyTest:
    """A cheap authenticated call to the provider: valid, invalid or unreachable."""
    return KeyTest.model_validate(await vault.test(service))


@router.delete("/api-keys/{service}")
async def delete_key(service: ServiceName, _admin: AdminUser, vault: VaultDep) -> KeyDeleted:
    """Delete the stored key of a service for good (404 when none is stored)."""
    name = await vault.delete(service)
    return KeyDeleted(message=f"API key for {name} deleted", service_name=name)
