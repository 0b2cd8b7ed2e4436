"""``ai-lab import``: bring data in from other installations (``ai-lab import legacy`` for AI-Lab v2).

The module is not called ``import`` (a Python keyword); the sub-app is registered under that name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ailab.cli.common import console, fail, run_with_services
from ailab.config import ADMIN_NAME
from ailab.errors import NotFound

if TYPE_CHECKING:
    from ailab.services.container import Services
    from ailab.services.legacy.formats import ProgressFn
    from ailab.services.legacy.importer import ImportReport

app = typer.Typer(help="Bring data in from other installations.", no_args_is_help=True)

PHASES = {"read": "reading files", "import": "importing sessions"}


@contextmanager
def _progress_bar() -> Iterator[ProgressFn | None]:
    """A progress callback drawing a bar, only when stdout is a terminal."""
    if not sys.stdout.isatty():
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _print_report(report: ImportReport) -> None:
    table = Table(title="AI-Lab v2 import", title_justify="left")
    table.add_column("")
    for column in ("imported", "already present", "skipped"):
        table.add_column(column, justify="right")
    for name, tally in report.rows():
        table.add_row(name, str(tally.imported), str(tally.already_present), str(tally.skipped))
    console.print(table)
    console.print(f"files read: {report.files_read}", highlight=False)
    if report.api_keys:
        console.print(
            f"api keys: not imported ({report.api_keys} found in v2; they are encrypted with v2's own key "
            "file), re-enter with `ai-lab keys set`",
            highlight=False,
            soft_wrap=True,
        )
    if report.problems:
        console.print(f"[bold yellow]skipped ({len(report.problems)}):[/]")
        for problem in report.problems:
            console.print(
                f"  {escape(problem.where)}: {escape(problem.reason)}", highlight=False, soft_wrap=True
            )


@app.command("legacy")
def legacy(
    paths: list[Path] = typer.Argument(  # noqa: B008 - Typer's way
        ...,
        help="v2 folders (holding conversations/, states/ and/or ai_lab.db, or JSON files directly) "
        "and v2 ai_lab.db files, in any mix",
        show_default=False,
        metavar="PATH",
    ),
    user: str = typer.Option(ADMIN_NAME, "--user", help="owner of the imported sessions"),
    batch_size: int = typer.Option(
        100, "--batch-size", min=1, max=100_000, help="sessions written per transaction"
    ),
) -> None:
    """Import AI-Lab v2 conversations, agent states and performance metrics.

    Idempotent: running it again adds nothing, and an interrupted run completes when run again.

    The originals are only read. Exits 1 when anything was skipped (each skip is listed with its reason).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from ailab.services.legacy.importer import LegacyImporter

    async def run(services: Services) -> ImportReport:
        importer = LegacyImporter(services.db)
        owner_id = await importer.find_user_id(user)
        if owner_id is None and user == ADMIN_NAME:
            await services.auth.ensure_admin()  # what `ai-lab serve` does on a fresh install
            owner_id = await importer.find_user_id(user)
        if owner_id is None:
            raise NotFound(f"no user {user!r}: create it first with `ai-lab users add {user}`")
        with _progress_bar() as progress:
            return await importer.import_paths(paths, owner_id, batch_size=batch_size, progress=progress)

    try:
        report = run_with_services(run)
    except SQLAlchemyError as exc:
        fail(f"database error: {str(getattr(exc, 'orig', exc) or exc).strip()[:300]}")
    except KeyboardInterrupt:
        fail("interrupted: what was written is whole sessions; run the same command again to finish", 130)
    _print_report(report)
    raise typer.Exit(1 if report.skipped_anything else 0)
