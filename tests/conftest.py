"""Shared fixtures: databases built with the production migrations, on SQLite and PostgreSQL.

PostgreSQL tests run against ``KASPARRO_TEST_POSTGRES_URL`` (default: the local server). Each
test session creates its own throw-away database. With ``CI=true`` an unreachable server is a
failure, never a skip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.engine import make_engine, upgrade_schema
from kasparro.db.models import Base

POSTGRES_ADMIN_URL = os.environ.get(
    "KASPARRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
RECORDED_DIR = SHARED_DIR / "fixtures" / "recorded"

# tables emptied between tests; data_version is reset rather than emptied
_DATA_TABLES = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "data_version"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's KASPARRO_* variables or .env file."""
    for key in list(os.environ):
        if key.startswith("KASPARRO_") and key != "KASPARRO_TEST_POSTGRES_URL":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


def _postgres_reachable() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, at the migrations' head."""
    problem = _postgres_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    name = f"kasparro_test_{uuid.uuid4().hex[:12]}"
    # pre-ping: a reliability test may restart the server, which kills the pooled connection
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = (
        sa.engine.make_url(POSTGRES_ADMIN_URL)
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the migrations' head, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    return path


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY CASCADE"))
        conn.execute(sa.text("UPDATE data_version SET version = 0"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A database URL at the migrations' head, empty: one SQLite file per test, or the session's
    PostgreSQL database emptied."""
    if request.param == "sqlite":
        path = tmp_path / "kasparro.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def settings_for(database_url: str, tmp_path: Path, /, **overrides: Any) -> Settings:
    """Settings for a test: the given database, fast retries, no real hosts. Any setting,
    ``database_url`` included, can be overridden by keyword."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "csv_path": tmp_path / "crypto.csv",
        "coinpaprika_min_interval": 0.0,
        "coingecko_min_interval": 0.0,
        "retry_min_wait": 0.01,
        "retry_max_wait": 0.05,
        "retry_after_cap": 0.2,
        "http_timeout": 2.0,
        "coinpaprika_base_url": "http://127.0.0.1:9/v1",
        "coingecko_base_url": "http://127.0.0.1:9/api/v3",
        "backup_dir": tmp_path / "backups",
        "data_version_ttl": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_settings(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test on this test's database (see ``settings_for``)."""

    def factory(**overrides: Any) -> Settings:
        return settings_for(db_url, tmp_path, **overrides)

    return factory


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@contextlib.contextmanager
def empty_postgres_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of its own with no schema at all, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            sa.engine.make_url(POSTGRES_ADMIN_URL)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def cli_on_test_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the CLI at the test database; undo the logging setup each command installs."""
    monkeypatch.setenv("KASPARRO_DATABASE_URL", db_url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
