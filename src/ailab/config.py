"""Settings: one pydantic-settings class, read from ``AILAB_*`` variables and ``.env``.

Nothing is built at import time: :func:`get_settings` builds a fresh object and callers pass it on
(``create_app(settings)``, the CLI commands), so tests construct their own.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_NAME = "ai_lab.db"
ADMIN_NAME = "admin"  # the user made on first start, whose password AILAB_ADMIN_PASSWORD sets


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
    redis_prefix: str = Field(
        "ailab", min_length=1, max_length=64
    )  # keys of one deployment in a shared Redis
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
    provider_timeout_seconds: float = Field(120.0, gt=0)
    # Per provider plugin, settings on top of its own AILAB_<NAME>_* ones: {"ollama": {"base_url": ...}}.
    # Each plugin declares and validates its settings (see providers/plugin.py); the core names none.
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Model aliases and routing (deployments, fallbacks, cool-downs): YAML, re-read when it changes.
    # None: <data dir>/models.yaml; a missing file means no aliases.
    models_file: Path | None = None

    # Agents
    default_pipeline: str = "agents"
    agent_max_steps: int = Field(6, ge=1, le=100)
    agent_time_budget_seconds: float = Field(300.0, gt=0)

    # Runs (a /chat turn outlives its request)
    max_runs_per_user: int = Field(4, ge=1, le=1000)  # concurrent runs; past it /chat answers 429
    run_events_retention_seconds: float = Field(600.0, ge=0)  # events kept for replay after a run ends

    # Files (uploads under <data dir>/uploads)
    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    # POST /files waits this long for a document's text before answering "processing" (0: never waits).
    upload_wait_seconds: float = Field(10.0, ge=0)
    extract_timeout_seconds: float = Field(30.0, gt=0)  # per document, in a worker process
    extract_memory_mb: int = Field(512, ge=64)  # a worker process's address space
    extract_max_pages: int = Field(2000, ge=1)
    extract_workers: int = Field(1, ge=1, le=16)
    # An embedding model ("openai/text-embedding-3-small") or an alias of such models: file retrieval's
    # second stage.
    files_embedding_model: str = ""

    # Monitoring
    benchmark_max_running: int = Field(2, ge=1, le=100)  # per user, waiting and background runs together
    metrics_retention_days: int = Field(30, ge=1)
    metrics_flush_seconds: float = Field(2.0, gt=0)
    # Past this rate per route or model (successes and failures apart), the history keeps a uniform sample
    # whose rows carry what they stand for: counts stay exact, percentiles are estimated from the sample.
    metrics_samples_per_second: int = Field(100, ge=1)
    system_sample_seconds: float = Field(5.0, gt=0)
    # Usage per user, token and model is counted in memory and written (and shared for budgets) this often;
    # a crash loses at most this much of it.
    usage_flush_seconds: float = Field(1.0, gt=0, le=3600)

    @field_validator("cors_origins", mode="before")
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
    def models_path(self) -> Path:
        """The model aliases file (``AILAB_MODELS_FILE``, default ``<data dir>/models.yaml``)."""
        return self.models_file if self.models_file is not None else self.data_dir / "models.yaml"

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
