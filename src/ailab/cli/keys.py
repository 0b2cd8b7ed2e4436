"""``ai-lab keys``: the API-key vault from the shell. Keys are read from stdin, never from argv.

Nothing here names a provider: which services take a key, and what it looks like, come from the
installed plugins (``ai-lab keys formats``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ailab.cli.common import console, fail, load_settings, run_with_core, table_console
from ailab.config import ConfigError

if TYPE_CHECKING:
    from ailab.services.container import CoreServices

app = typer.Typer(help="Provider API keys, encrypted in the database.", no_args_is_help=True)


def _read_key(service: str) -> str:
    """The key from stdin: typed without echo on a terminal, else the first line of the pipe."""
    if sys.stdin.isatty():
        return str(typer.prompt(f"API key for {service} (input hidden)", hide_input=True, default=""))
    return sys.stdin.readline().strip()


def _parse_config(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict; a clean exit for anything else."""
    config: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--config takes NAME=VALUE (e.g. --config base_url=http://127.0.0.1:8000/v1), not {pair!r}")
        config[name.strip()] = value.strip()
    return config


@app.command("list")
def list_command() -> None:
    """List the configured services (keys masked: last 4 characters only)."""

    async def run(core: CoreServices) -> None:
        infos = await core.vault.list_keys()
        table = Table("service", "key", "config", "updated", "last test", "source")
        for info in infos:
            config = ", ".join(f"{k}={v}" for k, v in info.config.items())
            test = f"{info.last_test_result} ({info.last_tested_at})" if info.last_tested_at else "-"
            table.add_row(
                info.service_name, info.masked_key or "-", config, info.updated_at or "-", test, info.source
            )
        table_console().print(table if infos else "no keys configured")
        console.print(f"supported: {', '.join(core.vault.supported_services())}", highlight=False)

    run_with_core(run)


@app.command("formats")
def formats_command() -> None:
    """What each installed provider's key looks like, and the config settings it takes."""
    from ailab.providers.plugins import Plugins

    try:
        plugins = Plugins.load(load_settings().providers)
    except ConfigError as exc:
        fail(str(exc))
    table = Table("service", "key", "config (--config NAME=VALUE)")
    for name in plugins.keyed():
        plugin = plugins.plugins[name]
        form = plugin.credential
        if form is None:
            continue
        aliases = f" ({', '.join(plugin.aliases)})" if plugin.aliases else ""
        fields = "\n".join(
            f"{field}{' (required)' if spec.required else ''}: {spec.help}"
            for field, spec in form.config.items()
        )
        table.add_row(name + aliases, form.expected, fields or "-")
    console.print(table)


@app.command("set")
def set_command(
    service: str = typer.Argument(help="the provider, e.g. openai or anthropic (see `ai-lab keys formats`)"),
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            metavar="NAME=VALUE",
            help="a non-secret setting (an endpoint, a deployment: see `ai-lab keys formats`); repeatable",
        ),
    ] = None,
    base_url: str | None = typer.Option(None, help="the server's URL: short for --config base_url=URL"),
) -> None:
    """Store the key of SERVICE, read from stdin (e.g. `ai-lab keys set openai < key.txt`)."""
    settings = _parse_config(config or [])
    if base_url is not None:
        settings["base_url"] = base_url
    api_key = _read_key(service)

    async def run(core: CoreServices) -> None:
        info = await core.vault.set(service, api_key, settings)
        console.print(
            f"stored the key of {info.service_name} ({info.masked_key or 'no key'})", highlight=False
        )

    run_with_core(run)


@app.command("delete")
def delete_command(service: str = typer.Argument(help="the service whose key to delete")) -> None:
    """Delete the stored key of SERVICE."""

    async def run(core: CoreServices) -> None:
        name = await core.vault.delete(service)
        console.print(f"deleted the key of {name}")

    run_with_core(run)


@app.command("test")
def try_command(service: str = typer.Argument(help="the service whose key to try")) -> None:
    """Try the key of SERVICE with a cheap authenticated call; exit 1 unless it is valid."""

    async def run(core: CoreServices) -> str:
        outcome = await core.vault.test(service)
        console.print(f"{outcome.service_name}: {outcome.result} ({outcome.detail})", highlight=False)
        return outcome.result

    if run_with_core(run) != "valid":
        raise typer.Exit(1)


@app.command("rotate")
def rotate_command() -> None:
    """Re-encrypt every stored key under the newest master key, in one transaction.

    With AILAB_MASTER_KEY: put the new key first ("NEW,OLD"), run this, then drop OLD. With the key file
    (AILAB_MASTER_KEY unset): a new master key is generated and the old one retired; running servers keep
    working without a restart.
    """

    async def run(core: CoreServices) -> None:
        report = await core.vault.rotate()
        console.print(f"{report.summary()} ({report.source})", highlight=False)

    run_with_core(run)
