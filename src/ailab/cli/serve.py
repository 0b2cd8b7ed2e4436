"""``ai-lab serve``: run the HTTP server."""

from __future__ import annotations

import asyncio
import os

import typer

from ailab.cli.common import fail, load_settings
from ailab.config import ConfigError


def serve(
    host: str | None = typer.Option(None, help="bind address [env AILAB_HOST, default 127.0.0.1]"),
    port: int | None = typer.Option(None, help="port [env AILAB_PORT, default 8001]"),
    workers: int | None = typer.Option(None, help="server processes [env AILAB_WORKERS, default 1]"),
) -> None:
    """Start the AI-Lab server (migrates the database first)."""
    import uvicorn

    from ailab.logs import configure_logging
    from ailab.metrics import prepare_multiprocess_dir
    from ailab.services.vault.startup import check_stored_keys

    settings = load_settings(host=host, port=port, workers=workers)
    try:
        settings.check_startable()
        settings.ensure_data_dir()  # the SQLite file's folder must exist before anything opens it
        # Refuse a master key that cannot open the stored API keys, before any worker starts.
        asyncio.run(check_stored_keys(settings))
    except ConfigError as exc:
        fail(str(exc))
    # Worker processes rebuild the settings from the environment: hand the CLI's choices down.
    os.environ["AILAB_HOST"], os.environ["AILAB_PORT"] = settings.host, str(settings.port)
    os.environ["AILAB_WORKERS"] = str(settings.workers)
    if settings.workers > 1:
        # Workers record metrics into files there and /metrics/prometheus merges them (ailab.metrics).
        prepare_multiprocess_dir(settings.ensure_data_dir())
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "ailab.app:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="ailab.api.protocol:HttpProtocol",  # httptools, a whole response in one write
        access_log=False,
        log_config=None,
        # Only the proxies named in AILAB_FORWARDED_ALLOW_IPS may say who the client is.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
        server_header=False,
    )
