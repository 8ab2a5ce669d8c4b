"""Shared bench helpers: the machine description, throw-away databases and result files."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kasparro.db.engine import make_engine, upgrade_schema

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work"
PG_ADMIN_URL = os.environ.get(
    "KASPARRO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def pg_version() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            version = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
        engine.dispose()
        return version
    except Exception:
        return None


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version(),
        "kernel": platform.release(),
    }


def pg_available() -> bool:
    return pg_version() is not None


class PgTemplate:
    """A migrated template database; ``fresh()`` clones it into a throw-away database."""

    def __init__(self) -> None:
        self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.prefix = f"kasparro_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tmpl"
        self.created: list[str] = []
        self._create(self.template)
        engine = make_engine(self.url(self.template))
        upgrade_schema(engine)
        engine.dispose()

    def url(self, name: str) -> str:
        base = sa.engine.make_url(PG_ADMIN_URL)
        return base.set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> None:
        extra = f" TEMPLATE {template}" if template else ""
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{extra}'))
        self.created.append(name)

    def fresh(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        self._create(name, self.template)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = sa.engine.make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
                ),
                {"d": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            self.drop(self.url(name))
        self.admin.dispose()


class SqliteTemplate:
    """A migrated SQLite file; ``fresh()`` copies it into a new file in the temp dir."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.template = directory / "template.db"
        engine = make_engine(f"sqlite:///{self.template}")
        upgrade_schema(engine)
        engine.dispose()
        conn = sqlite3.connect(self.template)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

    def fresh(self) -> str:
        self.count += 1
        path = self.directory / f"bench_{self.count}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        pass


@contextmanager
def databases(kinds: list[str]) -> Iterator[dict[str, Any]]:
    """Templates for the requested backends (``sqlite``, ``postgres``); PG is skipped if down."""
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="kasparro-bench-", dir=WORK))
    made: dict[str, Any] = {}
    try:
        if "sqlite" in kinds:
            made["sqlite"] = SqliteTemplate(tmp)
        if "postgres" in kinds:
            if pg_available():
                made["postgres"] = PgTemplate()
            else:
                print("PostgreSQL is not reachable; PostgreSQL rows are skipped")
        yield made
    finally:
        for template in made.values():
            template.close()
        shutil.rmtree(tmp, ignore_errors=True)


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so the throw-away databases and files are removed."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def write_result(part: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"part": part, "date": now_utc(), "machine": machine(), **payload}
    path = RESULTS / f"{part}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def read_result(part: str) -> dict[str, Any] | None:
    path = RESULTS / f"{part}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"
