"""``ai-lab usage``: requests and tokens per user, API token or model, as ``GET /usage`` shows admins.

It reads what the server processes have stored: their counts reach the database within a flush interval
(``AILAB_USAGE_FLUSH_SECONDS``, a second by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from ailab.cli.common import run_with_core, table_console

if TYPE_CHECKING:
    from ailab.db.repos.usage import UsageRow
    from ailab.services.container import CoreServices

GroupBy = Literal["user", "token", "model"]


def _label(row: UsageRow, group_by: str) -> list[str]:
    if group_by == "model":
        return [row.model or "-"]
    if group_by == "token":
        token = f"{row.token_name} ({row.token_id})" if row.token_id else "(no API token)"
        return [row.user or row.user_id or "(nobody)", token]
    return [row.user or row.user_id or "(nobody)"]


def usage(
    group_by: Annotated[GroupBy, typer.Option("--group-by", help="user, token or model")] = "user",
    hours: Annotated[float, typer.Option(min=0.001, max=24 * 366, help="the window, back from now")] = 24,
    user: Annotated[str | None, typer.Option(help="one user's usage (a name)")] = None,
) -> None:
    """Usage of the last HOURS (hourly resolution), largest first."""

    async def run(core: CoreServices) -> None:
        report = await core.usage.report("", "", is_admin=True, group_by=group_by, hours=hours, user=user)
        heads = {"user": ["user"], "token": ["user", "API token"], "model": ["model"]}[group_by]
        table = Table(
            *heads,
            "requests",
            "prompt tokens",
            "completion tokens",
            title=f"since {report.since:%Y-%m-%d %H:%M} UTC",
        )
        for row in report.items:
            numbers = (row.requests, row.prompt_tokens, row.completion_tokens)
            table.add_row(*_label(row, group_by), *(f"{n:,}" for n in numbers))
        table_console().print(table if report.items else "no usage in this window")

    run_with_core(run)
