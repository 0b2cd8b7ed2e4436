"""``ai-lab keys``: the API-key vault from the shell. Keys are read from stdin, never from argv."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from ailab.cli.common import console, run_with_services
from ailab.services.container import Services

app = typer.Typer(help="Provider API keys, encrypted in the database.", no_args_is_help=True)


def _read_key(service: str) -> str:
    """The key from stdin: typed without echo on a terminal, else the first line of the pipe."""
    if sys.stdin.isatty():
        return str(typer.prompt(f"API key for {service} (input hidden)", hide_input=True, default=""))
    return sys.stdin.readline().strip()


@app.command("list")
def list_command() -> None:
    """List the configured services (keys masked: last 4 characters only)."""

    async def run(services: Services) -> None:
        infos = await services.vault.list_keys()
        table = Table("service", "key", "config", "updated", "last test", "source")
        for info in infos:
            config = ", ".join(f"{k}={v}" for k, v in info.config.items())
            test = f"{info.last_test_result} ({info.last_tested_at})" if info.last_tested_at else "-"
            table.add_row(
                info.service_name, info.masked_key or "-", config, info.updated_at or "-", test, info.source
            )
        console.print(table if infos else "no keys configured")
        console.print(f"supported: {', '.join(services.vault.supported_services())}", highlight=False)

    run_with_services(run)


@app.command("set")
def set_command(
    service: str = typer.Argument(help="openai, anthropic, gemini (google), azure, cohere, huggingface, ..."),
    endpoint: str | None = typer.Option(None, help="azure: https://<resource>.openai.azure.com"),
    deployment: str | None = typer.Option(None, help="azure: the deployment name"),
    api_version: str | None = typer.Option(None, help="azure: API version, e.g. 2024-10-21"),
    base_url: str | None = typer.Option(None, help="ollama, openai-compat (or a proxy): the server's URL"),
) -> None:
    """Store the key of SERVICE, read from stdin (e.g. `ai-lab keys set openai < key.txt`)."""
    options = {
        "endpoint": endpoint,
        "deployment": deployment,
        "api_version": api_version,
        "base_url": base_url,
    }
    config = {name: value for name, value in options.items() if value is not None}
    api_key = _read_key(service)

    async def run(services: Services) -> None:
        info = await services.vault.set(service, api_key, config)
        console.print(
            f"stored the key of {info.service_name} ({info.masked_key or 'no key'})", highlight=False
        )

    run_with_services(run)


@app.command("delete")
def delete_command(service: str = typer.Argument(help="the service whose key to delete")) -> None:
    """Delete the stored key of SERVICE."""

    async def run(services: Services) -> None:
        name = await services.vault.delete(service)
        console.print(f"deleted the key of {name}")

    run_with_services(run)


@app.command("test")
def try_command(service: str = typer.Argument(help="the service whose key to try")) -> None:
    """Try the key of SERVICE with a cheap authenticated call; exit 1 unless it is valid."""

    async def run(services: Services) -> str:
        outcome = await services.vault.test(service)
        console.print(f"{outcome.service_name}: {outcome.result} ({outcome.detail})", highlight=False)
        return outcome.result

    if run_with_services(run) != "valid":
        raise typer.Exit(1)


@app.command("rotate")
def rotate_command() -> None:
    """Re-encrypt every stored key under the newest master key, in one transaction.

    With AILAB_MASTER_KEY: put the new key first ("NEW,OLD"), run this, then drop OLD. With the key file
    (AILAB_MASTER_KEY unset): a new master key is generated and the old one retired; running servers keep
    working without a restart.
    """

    async def run(services: Services) -> None:
        report = await services.vault.rotate()
        console.print(
            f"re-encrypted {report.reencrypted} key(s) under the newest master key ({report.source})",
            highlight=False,
        )
        if report.new_key_created:
            console.print(
                f"generated a new master key; {report.old_keys} old key(s) retired", highlight=False
            )
        elif report.old_keys:
            console.print(
                f"the {report.old_keys} older key(s) in AILAB_MASTER_KEY are no longer needed: drop them",
                highlight=False,
            )
        else:
            console.print(
                "AILAB_MASTER_KEY lists one key: to change it, set AILAB_MASTER_KEY=NEW,OLD and rotate again",
                highlight=False,
            )

    run_with_services(run)
