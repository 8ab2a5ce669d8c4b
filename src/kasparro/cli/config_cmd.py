"""``kasparro config show``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from kasparro.cli.common import boot

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show() -> None:
    """Print the effective settings, secrets masked."""
    settings = boot(log=False)
    table = Table("setting", "value")
    for name, value in settings.masked().items():
        table.add_row(name, str(value))
    Console().print(table)
