"""Helpers shared by the CLI commands: settings, logging and the engine, built once."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from sqlalchemy import Engine

from kasparro.config import Settings, load_settings, mask_url
from kasparro.db.engine import check_connection, make_engine, upgrade_schema
from kasparro.exceptions import ConfigurationError, DatabaseUnavailableError
from kasparro.observability.logging import configure_logging_for


def fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def boot(*, log: bool = True) -> Settings:
    """Load and validate settings (exit 2 naming the variable on error) and configure logging."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        fail(str(exc))
    if log:
        # commands print their tables on stdout; their logs go to stderr (services log to stdout)
        configure_logging_for(settings, stream=sys.stderr)
    return settings


def open_database(settings: Settings, *, upgrade: bool = True) -> Engine:
    """The writer engine, with the schema upgraded to head (exit 2 if the database is down)."""
    try:
        engine = make_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout,
        )
    except OSError as exc:  # e.g. the SQLite file's folder cannot be created
        fail(f"cannot open the database ({mask_url(settings.database_url)}): {exc}")
    if upgrade:
        try:
            upgrade_schema(engine)
        except DatabaseUnavailableError as exc:
            fail(str(exc))
    return engine


def require_connection(engine: Engine) -> None:
    """Exit 2 with a one-line error if the database cannot be reached (for one-shot commands
    that open it without upgrading it; the services wait for it instead)."""
    try:
        check_connection(engine)
    except DatabaseUnavailableError as exc:
        engine.dispose()
        fail(str(exc))
