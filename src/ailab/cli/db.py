"""``ai-lab db``: database maintenance."""

from __future__ import annotations

import typer

from ailab.cli.common import console, fail, load_settings

app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(
    revision: str = typer.Argument("head", help="target revision"),
) -> None:
    """Apply the migrations up to REVISION (the newest by default); a no-op when already there."""
    from sqlalchemy.exc import SQLAlchemyError

    from ailab.db.migrate import head_revision, upgrade

    settings = load_settings()
    settings.ensure_data_dir()
    try:
        upgrade(settings.sqlalchemy_url, revision)
    except (SQLAlchemyError, OSError) as exc:
        fail(f"migration failed: {exc}")
    console.print(f"database at revision {head_revision() if revision == 'head' else revision}")
