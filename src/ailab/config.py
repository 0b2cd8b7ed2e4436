"""Settings: one pydantic-settings class, read from ``AILAB_*`` variables and ``.env``.

Nothing is built at import time: :func:`get_settings` builds a fresh object and callers pass it on
(``create_app(settings)``, the CLI commands), so tests construct their own.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_NAME = "ai_lab.db"


class Settings(BaseSettings):
    """Every knob of the server, with the defaults of the public contract."""

    model_config = SettingsConfigDict(
        env_prefix="AILAB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Core
    data_dir: Path = Path("./data")
    database_url: str = ""  # empty: SQLite file inside data_dir
    host: str = "127.0.0.1"
    port: int = Field(8001, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    cors_origins: Annotated[list[str], NoDecode] = []
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)
    graceful_shutdown_seconds: float = Field(30.0, ge=0)
    # What several replicas must share (login counts; later runs and limits): redis://host:6379/0
    redis_url: str = ""
    # Proxies whose X-Forwarded-For / -Proto are believed (comma-separated IPs or networks, "*" for any):
    # behind a reverse proxy every client would otherwise be the proxy's address.
    forwarded_allow_ips: str = ""

    # Auth
    auth: Literal["on", "off"] = "on"
    admin_password: SecretStr | None = None
    access_token_ttl_seconds: int = Field(12 * 3600, ge=60)
    login_max_failures: int = Field(5, ge=1)
    login_lockout_seconds: float = Field(60.0, ge=1)

    # Vault
    master_key: SecretStr | None = None

    # Models
    default_model: str = ""  # empty: the embedded model
    local_model_path: Path | None = None
    local_threads: int = Field(0, ge=0)  # 0: all cores
    local_context: int = Field(4096, ge=256)
    # The embedded model's prompting and sampling when a request does not say (see providers/local.py).
    local_system_prompt: str = "You are a helpful assistant. Give a short, direct answer."
    local_temperature: float = Field(0.2, ge=0, le=2)
    local_top_p: float = Field(0.9, gt=0, le=1)
    local_repeat_penalty: float = Field(1.1, ge=1, le=2)
    # Bounds of one embedded generation, and of the queue in front of the model.
    local_max_tokens: int = Field(1024, ge=1)
    local_timeout_seconds: float = Field(60.0, gt=0)
    local_queue_size: int = Field(8, ge=0, le=1000)
    local_queue_timeout_seconds: float = Field(30.0, gt=0)
    provider_timeout_seconds: float = Field(120.0, gt=0)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    gemini_api_key: SecretStr | None = None
    azure_base_url: str = ""  # https://<resource>.openai.azure.com
    azure_api_key: SecretStr | None = None
    azure_api_version: str = "2024-10-21"
    azure_deployments: Annotated[list[str], NoDecode] = []
    cohere_base_url: str = "https://api.cohere.com"
    cohere_api_key: SecretStr | None = None
    huggingface_base_url: str = "https://router.huggingface.co/v1"
    huggingface_api_key: SecretStr | None = None
    ollama_base_url: str = "http://127.0.0.1:11434"
    ollama_api_key: SecretStr | None = None
    openai_compat_base_url: str = ""
    openai_compat_api_key: SecretStr | None = None

    # Agents
    default_pipeline: str = "agents"
    agent_max_steps: int = Field(6, ge=1, le=100)
    agent_time_budget_seconds: float = Field(300.0, gt=0)

    # Monitoring
    benchmark_max_running: int = Field(2, ge=1, le=100)  # per user, waiting and background runs together
    metrics_retention_days: int = Field(30, ge=1)
    metrics_flush_seconds: float = Field(2.0, gt=0)
    system_sample_seconds: float = Field(5.0, gt=0)

    @field_validator("cors_origins", "azure_deployments", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / DEFAULT_SQLITE_NAME).resolve()}"

    @property
    def is_loopback(self) -> bool:
        """Whether the bind address only accepts connections from this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_startable(self) -> None:
        """Refuse settings that are unsafe to serve with; raises :class:`ConfigError`."""
        if self.auth == "off" and not self.is_loopback:
            raise ConfigError(
                f"AILAB_AUTH=off is only allowed on a loopback address, not on {self.host!r}: "
                "turn auth on or bind to 127.0.0.1"
            )

    def ensure_data_dir(self) -> Path:
        """Create the data dir (mode 0700) if missing and return it."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.data_dir


class ConfigError(Exception):
    """Settings that the server refuses to start with; the message names the setting."""


def get_settings(**overrides: object) -> Settings:
    """Build the settings from the environment and ``.env``, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
