"""``/api-keys``: the vault (admin only). Keys are never returned, only their last 4 characters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ailab.api.schemas.common import Out


class KeyCreate(BaseModel):
    service_name: str = Field(min_length=1, max_length=64, description="a provider: openai, anthropic, ...")
    # Optional only for providers that work without a key (ollama, openai-compat).
    api_key: str = Field("", max_length=4096, description="the secret; never echoed back")
    config: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="non-secret settings the provider declares (`ai-lab keys formats`): base_url, ...",
    )


class KeyOut(Out):
    """A configured service: from the vault, or only from the environment."""

    service_name: str
    masked_key: str | None = Field(description="'••••' and the key's last 4 characters")
    created_at: str | None
    updated_at: str | None
    last_tested_at: str | None
    last_test_result: Literal["valid", "invalid", "unreachable"] | None
    config: dict[str, str]
    source: Literal["vault", "environment"]


class KeyStored(KeyOut):
    status: Literal["success"] = "success"
    message: str


class ConfigFieldFormat(BaseModel):
    """A non-secret setting a service's key takes (an endpoint, a deployment)."""

    required: bool
    help: str


class KeyFormat(BaseModel):
    """What a service's key looks like, and the settings it takes (``ai-lab keys formats``)."""

    expected: str
    config: dict[str, ConfigFieldFormat]


class KeyList(BaseModel):
    configured_services: list[KeyOut]
    supported_services: list[str] = Field(description="the installed providers that take a key")
    formats: dict[str, KeyFormat] = Field(description="per supported service, what its key looks like")


class KeyTest(Out):
    """The outcome of a cheap authenticated call to the provider."""

    service_name: str
    result: Literal["valid", "invalid", "unreachable"]
    detail: str
    tested_at: str


class KeyDeleted(BaseModel):
    status: Literal["success"] = "success"
    message: str
    service_name: str


class KeyRotation(BaseModel):
    """What rotating the master key did."""

    message: str
    reencrypted: int = Field(description="stored keys re-encrypted under the newest master key")
    source: str = Field(description="AILAB_MASTER_KEY, or the key file (its path is not shown)")
    new_key_created: bool
    old_keys: int = Field(description="older master keys: retired (key file) or no longer needed (env)")
