"""``kasparro db``: schema upgrades, backups, restores and integrity checks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kasparro.cli.common import boot, fail, open_database, require_connection
from kasparro.db.engine import current_revision, upgrade_schema
from kasparro.pipeline.backup import BackupError, backup, restore, verify
from kasparro.pipeline.verify import VerifyReport

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Upgrade the database schema to the newest migration."""
    settings = boot()
    engine = open_database(settings)
    typer.echo(f"schema at revision {current_revision(engine)}")


@app.command("backup")
def backup_cmd(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write the backup (default: KASPARRO_BACKUP_DIR)."),
    ] = None,
) -> None:
    """Take an online, consistent backup and prune backups past the retention period."""
    settings = boot()
    engine = open_database(settings)
    try:
        path = backup(settings, engine, directory or settings.backup_dir)
    except BackupError as exc:
        fail(f"backup failed: {exc}", 1)
    finally:
        engine.dispose()
    typer.echo(str(path))


@app.command("restore")
def restore_cmd(
    file: Annotated[Path, typer.Argument(help="A backup written by `kasparro db backup`.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the database's contents with a backup, upgrade it to the current schema and verify it.

    Stop the API and the scheduler first.
    """
    settings = boot()
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Replace every row of the configured database with {file}?", abort=True)
    engine = open_database(settings, upgrade=False)
    require_connection(engine)
    try:
        restore(settings, engine, file)
        upgrade_schema(engine)
        report = verify(engine)
    except BackupError as exc:
        fail(f"restore failed: {exc}", 1)
    finally:
        engine.dispose()
    typer.echo(f"restored {file}")
    _finish(report)


@app.command("verify")
def verify_cmd() -> None:
    """Check integrity: row counts, raw lineage, duplicate history, checkpoints; non-zero on a problem."""
    settings = boot()
    engine = open_database(settings, upgrade=False)
    require_connection(engine)
    try:
        report = verify(engine)
    finally:
        engine.dispose()
    _finish(report)


def _finish(report: VerifyReport) -> None:
    console = Console()
    counts = Table("table", "rows", title="Row counts")
    for name, rows in report.counts.items():
        counts.add_row(name, str(rows))
    console.print(counts)
    for name, problems in report.checks.items():
        console.print(f"[{'red' if problems else 'green'}]{'FAIL' if problems else 'ok'}[/] {name}")
    if not report.ok:
        fail("verify failed:\n" + "\n".join(f"  - {problem}" for problem in report.problems), 1)
