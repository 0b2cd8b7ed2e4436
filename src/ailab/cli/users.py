"""``ai-lab users``: accounts from the shell. Passwords are read from stdin, never from argv.

Changes made here reach a running server within a few seconds (its credential cache); a disabled or
deleted user, or a changed password, ends the sessions opened before.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.table import Column, Table

from ailab.cli.common import console, err_console, fail, run_with_core, table_console

if TYPE_CHECKING:
    from ailab.services.container import CoreServices

app = typer.Typer(help="User accounts: add, list, disable, enable, delete, passwd.", no_args_is_help=True)

PASSWORD_STDIN_HELP = "read the password from stdin (the only way: never from the command line)"  # noqa: S105


def read_password(name: str, password_stdin: bool) -> str:
    """The new password of ``name`` from stdin: hidden and confirmed on a terminal, else the first line."""
    if not password_stdin:
        fail(
            "pass --password-stdin and type or pipe the password "
            f"(e.g. `ai-lab users add {name} --password-stdin < password.txt`); "
            "passwords on the command line end up in shell history and process lists"
        )
    if sys.stdin.isatty():
        password = str(
            typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True, err=True)
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("no password on stdin")
    return password


@app.command("add")
def add_command(
    name: str = typer.Argument(help="the user name (letters, digits, '.', '_', '-')"),
    admin: bool = typer.Option(False, "--admin", help="give the user the admin role"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=PASSWORD_STDIN_HELP),
) -> None:
    """Create user NAME, e.g. `echo "$PASSWORD" | ai-lab users add alice --password-stdin`."""
    password = read_password(name, password_stdin)

    async def run(core: CoreServices) -> None:
        user = await core.auth.create_user(name, password, "admin" if admin else "user")
        console.print(f"created user {user.name} ({user.role})", highlight=False)

    run_with_core(run)


@app.command("list")
def list_command() -> None:
    """List every user: name, role, whether disabled, when created."""

    async def run(core: CoreServices) -> None:
        users = await core.auth.list_users()
        table = Table(*(Column(h, overflow="fold") for h in ("name", "role", "disabled", "created")))
        for user in users:
            created = user.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            table.add_row(user.name, user.role, "yes" if user.disabled else "no", created)
        table_console().print(table if users else "no users")

    run_with_core(run)


@app.command("disable")
def disable_command(name: str = typer.Argument(help="the user to disable")) -> None:
    """Disable user NAME: their logins, access tokens and API tokens are refused (data is kept)."""

    async def run(core: CoreServices) -> None:
        await core.auth.update_user(name, disabled=True)
        console.print(f"disabled user {name}", highlight=False)

    run_with_core(run)


@app.command("enable")
def enable_command(name: str = typer.Argument(help="the user to enable")) -> None:
    """Enable user NAME again (they log in anew)."""

    async def run(core: CoreServices) -> None:
        await core.auth.update_user(name, disabled=False)
        console.print(f"enabled user {name}", highlight=False)

    run_with_core(run)


@app.command("delete")
def delete_command(
    name: str = typer.Argument(help="the user to delete"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask: delete the user and their sessions"),
) -> None:
    """Delete user NAME with their sessions, messages, API tokens and benchmark runs (asks for --yes)."""
    if not yes:
        sessions = run_with_core(lambda core: core.auth.count_sessions(name))
        what = f"user {name} and their {sessions} session(s)"
        if not sys.stdin.isatty():
            fail(f"this deletes {what}; add --yes to confirm")
        if not typer.confirm(f"delete {what}?", default=False, err=True):
            fail("nothing deleted")

    async def run(core: CoreServices) -> int:
        return await core.auth.delete_user(name)

    sessions = run_with_core(run)
    console.print(f"deleted user {name} and {sessions} session(s)", highlight=False)


@app.command("passwd")
def passwd_command(
    name: str = typer.Argument(help="whose password to set"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=PASSWORD_STDIN_HELP),
) -> None:
    """Set the password of NAME (read from stdin); their open sessions end."""
    password = read_password(name, password_stdin)

    async def run(core: CoreServices) -> None:
        await core.auth.set_password(name, password)
        err_console.print(f"password of {name} changed", highlight=False)

    run_with_core(run)
