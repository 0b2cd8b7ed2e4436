"""The API-key vault over HTTP (admin only): store, list (masked), test and delete provider keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from ailab.api.deps import AdminUser, ServicesDep
from ailab.services.vault import Vault

router = APIRouter(tags=["api-keys"])
ServiceName = Annotated[str, Path(max_length=64, description="a service name, e.g. openai")]


async def get_vault(services: ServicesDep) -> Vault:
    return services.vault


VaultDep = Annotated[Vault, Depends(get_vault)]


class KeyCreate(BaseModel):
    service_name: str = Field(max_length=64, description="openai, anthropic, gemini, azure, ...")
    # Optional only for services that work without a key (ollama, openai-compat).
    api_key: str = Field("", max_length=4096, description="the secret; never echoed back")
    config: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="non-secret settings: azure endpoint/deployment/api_version, base_url",
    )


@router.post("/api-keys")
async def store_key(body: KeyCreate, _admin: AdminUser, vault: VaultDep) -> dict[str, Any]:
    """Store or replace the key of a service; 422 saying what was expected when it does not fit."""
    info = await vault.set(body.service_name, body.api_key, body.config)
    return {"status": "success", "message": f"API key for {info.service_name} stored", **info.to_dict()}


@router.get("/api-keys")
async def list_keys(_admin: AdminUser, vault: VaultDep) -> dict[str, Any]:
    """The configured services (keys masked: last 4 characters only) and the supported ones."""
    infos = await vault.list_keys()
    return {
        "configured_services": [info.to_dict() for info in infos],
        "supported_services": vault.supported_services(),
    }


@router.post("/api-keys/{service}/test")
async def try_key(service: ServiceName, _admin: AdminUser, vault: VaultDep) -> dict[str, Any]:
    """A cheap authenticated call to the provider: valid, invalid or unreachable."""
    outcome = await vault.test(service)
    return {
        "service_name": outcome.service_name,
        "result": outcome.result,
        "detail": outcome.detail,
        "tested_at": outcome.tested_at,
    }


@router.delete("/api-keys/{service}")
async def delete_key(service: ServiceName, _admin: AdminUser, vault: VaultDep) -> dict[str, Any]:
    """Delete the stored key of a service for good (404 when none is stored)."""
    name = await vault.delete(service)
    return {"status": "success", "message": f"API key for {name} deleted", "service_name": name}
