"""``ai-lab tokens``: long-lived API tokens (for scripts and the OpenAI SDK under ``/v1``).

``create`` prints the token alone on stdout, once, so ``TOKEN=$(ai-lab tokens create ci)`` captures it;
only its SHA-256 is stored, so it cannot be shown again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Column, Table

from ailab.cli.common import console, err_console, run_with_core, table_console
from ailab.config import ADMIN_NAME

if TYPE_CHECKING:
    from ailab.services.container import CoreServices

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


@app.command("create")
def create_command(
    name: str = typer.Argument(help="what the token is for, e.g. 'laptop' or 'ci'"),
    user: str = typer.Option(ADMIN_NAME, "--user", "-u", help="the user the token acts as"),
) -> None:
    """Create an API token NAME for USER and print it once (stdout carries the token alone)."""

    async def run(core: CoreServices) -> str:
        plaintext, row = await core.auth.create_api_token(user, name)
        err_console.print(
            f"API token {row.id} ({row.name!r}) for {user}; it is shown only now:", highlight=False
        )
        return plaintext

    typer.echo(run_with_core(run))


@app.command("list")
def list_command(
    user: str | None = typer.Option(None, "--user", "-u", help="only this user's tokens"),
) -> None:
    """List API tokens (never their secret): id, name, user, created, last used, state."""

    async def run(core: CoreServices) -> None:
        user_id = (await core.auth.get_user(user)).id if user is not None else None
        rows = await core.auth.list_api_tokens(user_id)
        # Fold rather than cut: the id is what `tokens revoke` needs.
        table = Table(
            Column("id", no_wrap=True, min_width=36),
            *(Column(h, overflow="fold") for h in ("name", "user", "created", "last used", "state")),
        )
        for token, owner in rows:
            table.add_row(
                token.id,
                token.name,
                owner,
                f"{token.created_at:%Y-%m-%d}",
                f"{token.last_used_at:%Y-%m-%d}" if token.last_used_at else "never",
                "revoked" if token.revoked_at else "active",
            )
        table_console().print(table if rows else "no API tokens")

    run_with_core(run)


@app.command("revoke")
def revoke_command(
    token_id: str = typer.Argument(metavar="ID", help="the token's id (see `tokens list`)"),
) -> None:
    """Revoke the API token ID; it is refused from then on."""

    async def run(core: CoreServices) -> None:
        token = await core.auth.revoke_api_token(token_id)
        console.print(f"revoked API token {token.id} ({token.name!r})", highlight=False)

    run_with_core(run)
