"""The ``ai-lab`` command: one Typer sub-app per noun, each calling the services."""

from __future__ import annotations

import typer

from ailab import __version__
from ailab.cli import bench, db, files, keys, models, serve, tokens, usage, users
from ailab.cli import importer as import_cli

app = typer.Typer(
    name="ai-lab",
    help="AI-Lab: a self-hosted AI workbench. Settings come from AILAB_* variables and ./.env.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(import_cli.app, name="import")
app.add_typer(keys.app, name="keys")
app.add_typer(models.app, name="models")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(files.app, name="files")
app.command("bench")(bench.bench)
app.command("usage")(usage.usage)


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console entry point."""
    app()
