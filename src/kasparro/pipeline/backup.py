"""Online backups and restores: the SQLite backup API, or ``pg_dump`` / ``pg_restore``."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from kasparro.config import Settings
from kasparro.db.engine import is_sqlite, sqlite_path
from kasparro.exceptions import StorageError
from kasparro.pipeline.verify import VerifyReport as VerifyReport
from kasparro.pipeline.verify import verify as verify

log = logging.getLogger(__name__)

PREFIX = "kasparro-"
SUFFIXES = (".sqlite", ".dump")
_STAMP = "%Y%m%dT%H%M%S%fZ"


class BackupError(StorageError):
    """A backup or restore could not be completed."""


def list_backups(directory: Path) -> list[Path]:
    """Backup files in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.name.startswith(PREFIX) and p.suffix in SUFFIXES]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def backup(settings: Settings, engine: Engine, directory: Path | None = None) -> Path:
    """Take an online, consistent backup into ``directory`` and prune expired ones."""
    target_dir = Path(directory or settings.backup_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    suffix = ".sqlite" if is_sqlite(engine) else ".dump"
    final = target_dir / f"{PREFIX}{now.strftime(_STAMP)}{suffix}"
    partial = final.with_name(final.name + ".partial")
    try:
        if is_sqlite(engine):
            _sqlite_copy(_sqlite_file(engine), partial, single_file=True)
        else:
            _pg_run("pg_dump", engine.url, ["--format=custom", "--no-owner", f"--file={partial}"])
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    log.info("backup written to %s (%d bytes)", final, final.stat().st_size)
    prune(target_dir, retention_days=settings.backup_retention_days, keep=final)
    return final


def prune(
    directory: Path, *, retention_days: int, keep: Path | None = None, now: datetime | None = None
) -> list[Path]:
    """Delete backups older than the retention period; return what was deleted."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    removed = []
    for path in list_backups(directory):
        if path == keep:
            continue
        if datetime.fromtimestamp(path.stat().st_mtime, UTC) < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("pruned %d backup(s) older than %d day(s)", len(removed), retention_days)
    return removed


def restore(settings: Settings, engine: Engine, file: Path) -> None:
    """Replace the database's contents with a backup taken by :func:`backup`.

    Stop the services writing to the database first: a restore is not meant to run under load.
    """
    file = Path(file)
    if not file.is_file():
        raise BackupError(f"backup file {file} does not exist")
    engine.dispose()
    if is_sqlite(engine):
        if file.suffix == ".dump":
            raise BackupError(f"{file.name} is a PostgreSQL dump; this database is SQLite")
        _check_sqlite_file(file)
        _sqlite_copy(file, _sqlite_file(engine))
    else:
        if file.suffix == ".sqlite":
            raise BackupError(f"{file.name} is a SQLite backup; this database is PostgreSQL")
        _pg_run(
            "pg_restore",
            engine.url,
            ["--clean", "--if-exists", "--no-owner", "--single-transaction", str(file)],
        )
    log.info("restored %s", file)


def _sqlite_file(engine: Engine) -> Path:
    path = sqlite_path(str(engine.url))
    if path is None:
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return path


def _sqlite_copy(source: Path, target: Path, *, single_file: bool = False) -> None:
    """Online copy; readers and writers of ``source`` carry on meanwhile.

    ``single_file`` leaves the copy in rollback-journal mode: one self-contained file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            # SQLite cannot copy into a WAL-mode file of another page size (a backup taken with
            # 4 KiB pages, restored into a database created since with 16 KiB ones): then the
            # copy goes in under a rollback journal, which needs the file to itself, and the
            # target returns to WAL after it
            resize = _wal(dst) and _page_size(dst) != _page_size(src)
            if resize:
                _journal(dst, "DELETE", target)
            src.backup(dst)
            if resize:
                _journal(dst, "WAL", target)
            if single_file:
                dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite copy {source} -> {target} failed: {exc}") from exc
    finally:
        src.close()


def _wal(conn: sqlite3.Connection) -> bool:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"


def _page_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA page_size").fetchone()[0])


def _journal(conn: sqlite3.Connection, mode: str, path: Path) -> None:
    """Switch ``path`` to journal ``mode``; leaving WAL needs every other connection closed."""
    try:
        got = str(conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]).lower()
    except sqlite3.OperationalError:  # "database is locked": another connection holds it
        got = ""
    if got != mode.lower():
        raise BackupError(
            f"{path} is open elsewhere, and a backup of another page size can only be restored"
            " into it alone: stop the API, the scheduler and anything else using it, then retry"
        )


def _check_sqlite_file(file: Path) -> None:
    with file.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise BackupError(f"{file} is not a SQLite database")


def _pg_run(tool: str, url: URL, args: list[str]) -> None:
    """Run a PostgreSQL client tool; the password goes through PGPASSWORD, never argv."""
    executable = shutil.which(tool)
    if executable is None:
        raise BackupError(f"{tool} is not installed (install the PostgreSQL client tools)")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    command = [executable, "--no-password", f"--dbname={url.database}"]
    if url.host:
        command.append(f"--host={url.host}")
    if url.port:
        command.append(f"--port={url.port}")
    if url.username:
        command.append(f"--username={url.username}")
    sslmode = url.query.get("sslmode")
    if isinstance(sslmode, str):
        env["PGSSLMODE"] = sslmode
    result = subprocess.run(command + args, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise BackupError(f"{tool} failed with exit code {result.returncode}: {detail[0]}")
