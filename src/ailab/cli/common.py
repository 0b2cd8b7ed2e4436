"""What every CLI command shares: settings, running a coroutine with the services, clean errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from ailab.config import ConfigError, Settings, get_settings
from ailab.errors import AILabError

if TYPE_CHECKING:  # loaded when a command runs: `ai-lab --help` needs none of it
    from ailab.services.container import CoreServices, Services

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)
PIPED_TABLE_WIDTH = 160


def table_console() -> Console:
    """Where tables go: the terminal, or a wide console when piped (so grep sees whole values)."""
    return console if console.is_terminal else Console(width=PIPED_TABLE_WIDTH)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error (no traceback) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def load_settings(**overrides: object) -> Settings:
    """The settings, or a clean exit naming what is wrong."""
    try:
        return get_settings(**{k: v for k, v in overrides.items() if v is not None})
    except (ValueError, ConfigError) as exc:
        fail(f"invalid settings: {exc}")


def run_with_services(fn: Callable[[Services], Awaitable[T]], settings: Settings | None = None) -> T:
    """Migrate the database, build the services, run ``fn`` and close everything."""
    from ailab.db.migrate import upgrade
    from ailab.services.container import build_services

    settings = settings or load_settings()

    async def main() -> T:
        settings.ensure_data_dir()
        await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
        services = await build_services(settings)
        try:
            return await fn(services)
        finally:
            await services.aclose()

    return _run_cleanly(main)


def _run_cleanly(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` in a new event loop; our errors become a clean message and exit 1."""
    try:
        return asyncio.run(main())
    except ConfigError as exc:
        fail(str(exc))
    except AILabError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"database unavailable: {exc}")


def run_with_core(fn: Callable[[CoreServices], Awaitable[T]], settings: Settings | None = None) -> T:
    """Migrate the database and run ``fn`` with the database-only services (no providers, no samplers)."""
    from ailab.db.migrate import upgrade
    from ailab.services.container import build_core

    settings = settings or load_settings()

    async def main() -> T:
        settings.ensure_data_dir()
        await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
        core = build_core(settings)
        try:
            return await fn(core)
        finally:
            await core.aclose()

    return _run_cleanly(main)
