"""The ``kasparro`` command."""

from __future__ import annotations

import typer

from kasparro.cli import config_cmd as config_cmd
from kasparro.cli import db as db
from kasparro.cli import etl as etl
from kasparro.cli import service as service

app = typer.Typer(help="Kasparro: crypto market data pipeline and read API.", no_args_is_help=True)
app.add_typer(etl.app, name="etl", help="Run or replay the ETL pipeline.")
app.add_typer(db.app, name="db", help="Schema upgrades, backups, restores and integrity checks.")
app.add_typer(config_cmd.app, name="config", help="Inspect the effective configuration.")
app.command("sources")(etl.sources)
service.register(app)


def main() -> None:
    app()
