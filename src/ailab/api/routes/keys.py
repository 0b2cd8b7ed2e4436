"""The API-key vault over HTTP (admin only): store, list (masked), test and delete provider keys."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ailab.api.deps import AdminUser, ServicesDep
from ailab.api.schemas.common import COMMON_PROBLEMS, problems
from ailab.api.schemas.keys import (
    ConfigFieldFormat,
    KeyCreate,
    KeyDeleted,
    KeyFormat,
    KeyList,
    KeyOut,
    KeyRotation,
    KeyStored,
    KeyTest,
)
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
    """The configured services (keys masked: last 4 characters only), the supported ones, and what each
    one's key looks like."""
    infos = await vault.list_keys()
    formats = {
        name: KeyFormat(
            expected=form.expected,
            config={
                field: ConfigFieldFormat(required=spec.required, help=spec.help)
                for field, spec in form.config.items()
            },
        )
        for name, form in vault.formats().items()
    }
    return KeyList(
        configured_services=[KeyOut.model_validate(info) for info in infos],
        supported_services=vault.supported_services(),
        formats=formats,
    )


@router.post("/api-keys/rotate")
async def rotate_master_key(_admin: AdminUser, vault: VaultDep) -> KeyRotation:
    """Re-encrypt every stored key under the newest master key, in one transaction (as ``ai-lab keys
    rotate``): with the key file a new master key is made and the old one retired; with
    AILAB_MASTER_KEY="NEW,OLD" the keys move to NEW and OLD may then be dropped."""
    report = await vault.rotate()
    return KeyRotation(
        message=report.summary(),
        reencrypted=report.reencrypted,
        source=report.source if report.source == "AILAB_MASTER_KEY" else "key file",  # never the file's path
        new_key_created=report.new_key_created,
        old_keys=report.old_keys,
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
