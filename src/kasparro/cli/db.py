"""``kasparro db``: schema upgrades (and, with the service, backup / restore / verify)."""

from __future__ import annotations

import typer

from kasparro.cli.common import boot, open_database
from kasparro.db.engine import current_revision

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Upgrade the database schema to the newest migration."""
    settings = boot()
    engine = open_database(settings)
    typer.echo(f"schema at revision {current_revision(engine)}")
