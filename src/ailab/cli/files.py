"""``ai-lab files``: a user's uploaded files, for scripts: list, add (upload and read), delete.

``add`` goes through the same checks as ``POST /files`` (limit, type from the bytes, same bytes once per
user) and waits until each document's text is read; it exits 1 when any file was refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from ailab.cli.common import console, err_console, run_with_core, table_console
from ailab.config import ADMIN_NAME
from ailab.errors import AILabError
from ailab.services.files.storage import human_size

if TYPE_CHECKING:
    from ailab.services.container import CoreServices

app = typer.Typer(help="Uploaded files: list, add, delete.", no_args_is_help=True)
READ_CHUNK = 1024 * 1024
UserOption = typer.Option(ADMIN_NAME, "--user", "-u", help="whose files")


@app.command("list")
def list_command(
    user: str = UserOption,
    limit: int = typer.Option(200, "--limit", min=1, max=200, help="at most this many, newest first"),
) -> None:
    """List a user's files: id, name, type, size, status."""

    async def run(core: CoreServices) -> None:
        owner = await core.auth.get_user(user)
        rows = await core.files.list_files(owner.id, limit=limit)
        table = Table(
            Column("id", no_wrap=True, min_width=36),
            *(Column(h, overflow="fold") for h in ("name", "type", "size", "status", "uploaded")),
        )
        for row in rows:
            status = row.status if row.status != "failed" else f"failed: {row.error}"
            table.add_row(
                row.id,
                row.filename,
                row.content_type,
                human_size(row.size),
                status,
                f"{row.created_at:%Y-%m-%d %H:%M}",
            )
        table_console().print(table if rows else f"{user} has no files")

    run_with_core(run)


@app.command("add")
def add_command(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH...", help="files to upload", exists=True, dir_okay=False, readable=True),
    ],
    user: str = UserOption,
) -> None:
    """Upload files for a user and read their text (as POST /files does); prints each file's id."""

    async def run(core: CoreServices) -> int:
        owner = await core.auth.get_user(user)
        refused = 0
        for path in paths:
            try:
                with core.files.receive() as incoming:
                    with path.open("rb") as source:
                        while chunk := source.read(READ_CHUNK):
                            incoming.write(chunk)
                    upload = await core.files.accept(owner.id, incoming, path.name)
                await core.files.wait_read(upload.file.id)
                row = await core.files.get(owner.id, upload.file.id)
            except AILabError as exc:
                refused += 1
                err_console.print(f"[red]refused[/] {path}: {exc.message}", highlight=False, soft_wrap=True)
                continue
            if row.status == "failed":
                refused += 1
                err_console.print(f"[red]failed[/] {path}: {row.error}", highlight=False, soft_wrap=True)
                continue
            known = "" if upload.created else " (the same bytes were there already)"
            pages = f", {row.pages} page(s)" if row.pages else ""
            console.print(
                f"{row.id}  {row.filename}  {row.content_type}{pages}{known}", highlight=False, soft_wrap=True
            )
        return refused

    if run_with_core(run):
        raise typer.Exit(1)


@app.command("delete")
def delete_command(
    file_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="ids of files to delete (see `files list`)")
    ],
    user: str = UserOption,
) -> None:
    """Delete a user's files: their text and their bytes."""

    async def run(core: CoreServices) -> None:
        owner = await core.auth.get_user(user)
        for file_id in file_ids:
            await core.files.delete(owner.id, file_id)
            console.print(f"deleted {file_id}", highlight=False)

    run_with_core(run)
