"""Engine factory and schema upgrades; nothing here runs at import time."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from kasparro.db.checkpointer import WalCheckpointer
from kasparro.exceptions import DatabaseUnavailableError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_KEY = 0x4B415350  # "KASP": one advisory lock for schema upgrades
#: page cache of a SQLite writer connection (SQLite's default is 2 MiB)
WRITER_CACHE_KIB = 64 * 1024
#: page size of a new SQLite database (SQLite's default is 4 KiB). Larger pages mean fewer page
#: splits and shallower indexes, and fewer pages written to the WAL per commit: measured, a
#: bulk load of raw, unified and history rows ran 20% faster with 16 KiB than with 4 KiB.
#: A database created before keeps its size (docs/operations.md shows how to convert one: a
#: plain VACUUM cannot change the page size of a WAL-mode file).
PAGE_SIZE = 16 * 1024


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory databases."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def make_engine(
    url: str, *, pool_size: int = 10, pool_timeout: float = 5.0, writer: bool = True
) -> Engine:
    """Create an engine. On SQLite, writers take the write lock up front (``BEGIN IMMEDIATE``).

    Deferred SQLite transactions that read and then write fail with "database is locked" when
    another writer got in between; taking the lock at BEGIN makes them wait for it instead.
    """
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            **(
                {"poolclass": NullPool}
                if path is None
                else {
                    "pool_size": pool_size,
                    "max_overflow": pool_size,
                    "pool_timeout": pool_timeout,
                    # the most recently used connection first: its page cache is the warm one
                    "pool_use_lifo": True,
                }
            ),
        )
        begin_sql = "BEGIN IMMEDIATE" if writer else "BEGIN"
        checkpointer = WalCheckpointer(path) if writer and path is not None else None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            # only a database not created yet takes it (before WAL mode, which writes the header)
            cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            if checkpointer is not None:
                # checkpoints run on the checkpointer's thread up to its limit; past it, this
                # writer's own checkpoint completes the job and the WAL starts over, its file
                # cut back to the limit
                limit = checkpointer.limit_bytes
                page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
                cursor.execute(f"PRAGMA wal_autocheckpoint={max(1, limit // page_size)}")
                cursor.execute(f"PRAGMA journal_size_limit={limit}")
                # a batch of 1,000 records touches a few MB of index pages: keep them in memory
                cursor.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin_sql)

        if checkpointer is not None:
            engine_checkpointer = checkpointer

            @event.listens_for(engine, "commit")
            def _on_commit(_conn: Any) -> None:
                engine_checkpointer.committed()

            @event.listens_for(engine, "engine_disposed")
            def _on_dispose(_engine: Any) -> None:
                engine_checkpointer.close()

        return engine
    return create_engine(
        url,
        # readers see one snapshot per transaction, so a response never mixes two commits
        isolation_level="READ COMMITTED" if writer else "REPEATABLE READ",
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def check_connection(engine: Engine) -> None:
    """Raise DatabaseUnavailableError unless a trivial query succeeds."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"database unreachable: {exc.orig}") from exc


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Any]:
    """Serialize schema upgrades across processes: an advisory lock, or a lock file on SQLite."""
    if is_sqlite(engine):
        path = sqlite_path(str(engine.url))
        if path is None:
            with engine.connect() as conn:
                yield conn
            return
        lock_path = path.with_name(path.name + ".migrate.lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe when several processes start at once."""
    from alembic import command

    try:
        with _migration_lock(engine) as conn:
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"database unreachable: {exc.orig}") from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
