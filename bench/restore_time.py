"""Time backup, restore and verify of a database holding N price_history rows (default 1M).

Usage: python bench/restore_time.py [--rows 1000000] [--postgres-url URL] [--skip-postgres]

Builds the database with the production migrations on SQLite and on PostgreSQL, fills it,
backs it up with ``kasparro.pipeline.backup.backup``, restores the backup into a fresh empty
database with ``restore`` and runs ``verify`` on the result. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from kasparro.config import Settings
from kasparro.db.engine import make_engine, upgrade_schema
from kasparro.pipeline.backup import backup, restore, verify

ASSETS = 1000
START = datetime(2020, 1, 1, tzinfo=UTC)


def points(rows: int) -> Iterator[tuple[int, str, datetime, float]]:
    per_asset = max(rows // ASSETS, 1)
    for n in range(rows):
        asset_id = n // per_asset % ASSETS + 1
        yield asset_id, "coingecko", START + timedelta(hours=n % per_asset), 100.0 + n % 97


def seed_assets(engine: sa.Engine) -> None:
    asset = sa.table(
        "asset",
        sa.column("id"),
        sa.column("symbol"),
        sa.column("name"),
        sa.column("match_key"),
        sa.column("flagged"),
        sa.column("created_at"),
    )
    with engine.begin() as conn:
        conn.execute(
            asset.insert(),
            [
                {
                    "id": i,
                    "symbol": f"C{i}",
                    "name": f"Coin {i}",
                    "match_key": f"c{i}|coin {i}",
                    "flagged": False,
                    "created_at": START,
                }
                for i in range(1, ASSETS + 1)
            ],
        )


def fill_sqlite(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO price_history (asset_id, source, observed_at, price_usd) VALUES (?, ?, ?, ?)",
            ((a, s, t.strftime("%Y-%m-%d %H:%M:%S.%f"), p) for a, s, t, p in points(rows)),
        )
    conn.close()


def fill_postgres(engine: sa.Engine, rows: int) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(
            "COPY price_history (asset_id, source, observed_at, price_usd) FROM STDIN"
        ) as copy:
            for row in points(rows):
                copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


@contextmanager
def timed(results: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    results[name] = time.perf_counter() - started


def measure(
    source_url: str, target_url: str, rows: int, workdir: Path, fill: str
) -> dict[str, float]:
    results: dict[str, float] = {}
    engine = make_engine(source_url)
    upgrade_schema(engine)
    seed_assets(engine)
    with timed(results, "fill"):
        if fill == "sqlite":
            fill_sqlite(Path(engine.url.database or ""), rows)
        else:
            fill_postgres(engine, rows)
    settings = Settings(database_url=source_url, backup_dir=workdir)
    with timed(results, "backup"):
        path = backup(settings, engine, workdir)
    results["backup_mb"] = path.stat().st_size / 1e6
    engine.dispose()

    target = make_engine(target_url)
    with timed(results, "restore"):
        restore(Settings(database_url=target_url), target, path)
    with timed(results, "verify"):
        report = verify(target)
    if not report.ok or report.counts.get("price_history") != rows:
        raise SystemExit(
            f"restored database failed verification: {report.problems} {report.counts.get('price_history')}"
        )
    target.dispose()
    return results


def create_pg_database(admin_url: str) -> tuple[str, str]:
    name = f"kasparro_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, sa.engine.make_url(admin_url).set(database=name).render_as_string(
        hide_password=False
    )


def drop_pg_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    table: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table.append(
            (
                "SQLite",
                measure(
                    f"sqlite:///{work}/source.db",
                    f"sqlite:///{work}/target.db",
                    args.rows,
                    work / "sqlite-backups",
                    "sqlite",
                ),
            )
        )
        if not args.skip_postgres:
            source_name, source_url = create_pg_database(args.postgres_url)
            target_name, target_url = create_pg_database(args.postgres_url)
            try:
                table.append(
                    (
                        "PostgreSQL",
                        measure(source_url, target_url, args.rows, work / "pg-backups", "postgres"),
                    )
                )
            finally:
                drop_pg_database(args.postgres_url, source_name)
                drop_pg_database(args.postgres_url, target_name)

    print(
        f"{args.rows:,} price_history rows, {platform.machine()} {platform.system()}, Python {platform.python_version()}\n"
    )
    print(
        "| database | fill (s) | backup (s) | backup size (MB) | restore (s) | verify (s) | restore + verify (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in table:
        print(
            f"| {name} | {r['fill']:.1f} | {r['backup']:.1f} | {r['backup_mb']:.0f} | {r['restore']:.1f} | "
            f"{r['verify']:.1f} | {r['restore'] + r['verify']:.1f} |"
        )


if __name__ == "__main__":
    main()
