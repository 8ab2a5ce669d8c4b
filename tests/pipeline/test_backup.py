"""Backup → restore → verify round-trips on both databases; verify names what is broken."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.engine import is_sqlite
from kasparro.db.models import Base
from kasparro.pipeline import backup as backup_module
from kasparro.pipeline.backup import BackupError, backup, list_backups, prune, restore, verify
from tests.conftest import count_rows

T = Base.metadata.tables
SEEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def seed(engine: Engine, *, coins: int = 3) -> None:
    """A small but complete dataset: assets, raw payloads, unified rows, history, a run, checkpoints."""
    with engine.begin() as conn:
        run_id = conn.execute(
            T["etl_run"]
            .insert()
            .values(
                source="coingecko",
                status="success",
                trigger="manual",
                started_at=SEEN,
                loaded=coins,
            )
        ).inserted_primary_key[0]
        for i in range(coins):
            asset_id = conn.execute(
                T["asset"]
                .insert()
                .values(
                    symbol=f"C{i}", name=f"Coin {i}", match_key=f"c{i}|coin {i}", created_at=SEEN
                )
            ).inserted_primary_key[0]
            digest = f"{i:064x}"
            conn.execute(
                T["raw_coingecko"]
                .insert()
                .values(
                    run_id=run_id,
                    coin_id=f"coin-{i}",
                    payload={"id": f"coin-{i}"},
                    payload_hash=digest,
                    ingested_at=SEEN,
                )
            )
            conn.execute(
                T["unified_crypto"]
                .insert()
                .values(
                    asset_id=asset_id,
                    source="coingecko",
                    coin_id=f"coin-{i}",
                    symbol=f"C{i}",
                    name=f"Coin {i}",
                    price_usd=1.0 + i,
                    source_updated_at=SEEN - timedelta(minutes=i),
                    ingested_at=SEEN,
                    run_id=run_id,
                    payload_hash=digest,
                )
            )
            for hour in range(4):
                conn.execute(
                    T["price_history"]
                    .insert()
                    .values(
                        asset_id=asset_id,
                        source="coingecko",
                        observed_at=SEEN - timedelta(hours=hour),
                        price_usd=float(hour),
                        run_id=run_id,
                    )
                )
        conn.execute(
            T["etl_checkpoint"]
            .insert()
            .values(source="coingecko", last_value=SEEN.isoformat(), run_id=run_id, updated_at=SEEN)
        )


def counts(engine: Engine) -> dict[str, int]:
    return {
        name: count_rows(engine, name)
        for name in (
            "asset",
            "raw_coingecko",
            "unified_crypto",
            "price_history",
            "etl_run",
            "etl_checkpoint",
        )
    }


def test_backup_restore_verify_round_trip(
    engine: Engine, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    seed(engine)
    before = counts(engine)
    assert verify(engine).ok, verify(engine).problems

    path = backup(settings, engine, tmp_path / "backups")
    assert path.exists()
    assert path.suffix == (".sqlite" if is_sqlite(engine) else ".dump")
    assert list_backups(tmp_path / "backups") == [path]

    with engine.begin() as conn:  # damage done after the backup
        conn.execute(T["price_history"].delete())
        conn.execute(T["unified_crypto"].delete().where(T["unified_crypto"].c.coin_id == "coin-0"))
    assert count_rows(engine, "price_history") == 0

    restore(settings, engine, path)
    assert counts(engine) == before
    report = verify(engine)
    assert report.ok, report.problems
    assert report.counts["price_history"] == 12


def test_restore_discards_writes_made_after_the_backup(
    engine: Engine, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    seed(engine)
    path = backup(make_settings(), engine, tmp_path)
    with engine.begin() as conn:
        conn.execute(T["asset"].insert().values(symbol="NEW", name="New", match_key="new|new"))
    restore(make_settings(), engine, path)
    assert count_rows(engine, "asset") == 3


@pytest.mark.parametrize(
    ("damage", "check", "phrase"),
    [
        (
            lambda c: c.execute(
                T["raw_coingecko"].delete().where(T["raw_coingecko"].c.coin_id == "coin-1")
            ),
            "unified rows trace to raw payloads",
            "1 unified coingecko row(s) have no raw payload",
        ),
        (
            lambda c: c.execute(T["etl_checkpoint"].update().values(run_id=424242)),
            "no checkpoint ahead of its data",
            "points at run 424242, which does not exist",
        ),
        (
            lambda c: c.execute(
                T["etl_checkpoint"]
                .update()
                .values(last_value=(SEEN + timedelta(days=1)).isoformat())
            ),
            "no checkpoint ahead of its data",
            "ahead of its newest data",
        ),
        (
            lambda c: c.execute(
                T["unified_crypto"]
                .update()
                .values(payload_hash=None)
                .where(T["unified_crypto"].c.coin_id == "coin-2")
            ),
            "unified rows trace to raw payloads",
            "have no raw payload",
        ),
    ],
    ids=["raw-row-deleted", "checkpoint-run-missing", "checkpoint-ahead", "unified-without-hash"],
)
def test_verify_names_the_problem(
    engine: Engine, damage: Callable[[sa.Connection], Any], check: str, phrase: str
) -> None:
    seed(engine)
    with engine.begin() as conn:
        damage(conn)
    report = verify(engine)
    assert not report.ok
    assert any(phrase in problem for problem in report.checks[check]), report.checks
    assert [name for name, found in report.checks.items() if found] == [check]


def test_verify_reports_a_schema_behind_head(engine: Engine) -> None:
    with engine.begin() as conn:
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000_old'"))
    try:
        report = verify(engine)
    finally:  # the PostgreSQL database is shared by the session
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert report.checks["schema version"] == [
        f"schema at revision 0000_old, expected {head} (run kasparro db upgrade)"
    ]


def test_prune_removes_only_expired_backups(tmp_path: Path) -> None:
    old, recent, other = (
        tmp_path / "kasparro-old.sqlite",
        tmp_path / "kasparro-new.dump",
        tmp_path / "notes.txt",
    )
    for path in (old, recent, other):
        path.write_text("x")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    os.utime(other, (ten_days_ago, ten_days_ago))
    assert prune(tmp_path, retention_days=7) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kasparro-new.dump", "notes.txt"]


def test_backup_prunes_with_the_configured_retention(
    engine: Engine, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    stale = tmp_path / (
        "kasparro-20200101T000000000000Z" + (".sqlite" if is_sqlite(engine) else ".dump")
    )
    stale.write_text("x")
    long_ago = time.time() - 3 * 86400
    os.utime(stale, (long_ago, long_ago))
    fresh = backup(make_settings(backup_retention_days=2), engine, tmp_path)
    assert list_backups(tmp_path) == [fresh]


def test_restore_refuses_the_wrong_kind_of_file(
    engine: Engine, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    wrong = tmp_path / ("kasparro-x.dump" if is_sqlite(engine) else "kasparro-x.sqlite")
    wrong.write_bytes(b"not a backup")
    with pytest.raises(BackupError, match=r"dump|SQLite"):
        restore(make_settings(), engine, wrong)
    with pytest.raises(BackupError, match="does not exist"):
        restore(make_settings(), engine, tmp_path / "missing.sqlite")


def test_pg_password_goes_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen["command"], seen["env"] = command, kwargs["env"]
        return subprocess.CompletedProcess(command, 1, "", "pg_dump: error: connection refused")

    monkeypatch.setattr(backup_module.subprocess, "run", fake_run)
    url = sa.engine.make_url("postgresql+psycopg://kasparro:s3cret-pw@db.internal:6543/kasparro")
    with pytest.raises(
        BackupError, match="exit code 1: pg_dump: error: connection refused"
    ) as caught:
        backup_module._pg_run("pg_dump", url, ["--format=custom"])
    assert "s3cret-pw" not in " ".join(seen["command"])
    assert "s3cret-pw" not in str(caught.value)
    assert seen["env"]["PGPASSWORD"] == "s3cret-pw"
    assert "--host=db.internal" in seen["command"]
    assert "--port=6543" in seen["command"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("backup_pages", [4096, 16384])
def test_restore_across_page_sizes(
    engine: Engine, make_settings: Callable[..., Settings], tmp_path: Path, backup_pages: int
) -> None:
    """A backup taken before new databases got 16 KiB pages restores into one created since,
    and the other way round; the restored file is back in WAL mode and verifies."""
    import sqlite3

    from kasparro.db.engine import PAGE_SIZE, make_engine, sqlite_path, upgrade_schema

    seed(engine)
    path = backup(make_settings(), engine, tmp_path / "backups")
    with sqlite3.connect(path) as plain:  # the backup is a rollback-journal file: resizable
        plain.execute(f"PRAGMA page_size={backup_pages}")
        plain.execute("VACUUM")
    plain.close()

    live_pages = PAGE_SIZE if backup_pages != PAGE_SIZE else 4096
    live = tmp_path / "live.db"
    with sqlite3.connect(live) as plain:
        plain.execute(f"PRAGMA page_size={live_pages}")
        plain.execute("PRAGMA journal_mode=WAL")
    plain.close()
    target = make_engine(f"sqlite:///{live}")
    try:
        upgrade_schema(target)
        with target.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == live_pages
        restore(make_settings(), target, path)
        with target.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == backup_pages
        assert counts(target) == counts(engine)
        assert verify(target).ok, verify(target).problems
    finally:
        target.dispose()
    assert sqlite_path(str(target.url)) == live
    with sqlite3.connect(live) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_restore_of_another_page_size_asks_for_the_file_alone(
    engine: Engine, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """With another connection open, such a restore stops with a clear error and leaves the
    database as it was; one of the same page size still restores beside other readers."""
    import sqlite3

    from kasparro.db.engine import make_engine, upgrade_schema

    seed(engine)
    same = backup(make_settings(), engine, tmp_path / "same")
    other = backup(make_settings(), engine, tmp_path / "other")
    with sqlite3.connect(other) as plain:
        plain.execute("PRAGMA page_size=4096")
        plain.execute("VACUUM")
    plain.close()

    live = tmp_path / "live.db"
    target = make_engine(f"sqlite:///{live}")
    try:
        upgrade_schema(target)
        reader = sqlite3.connect(live, timeout=0.1)
        try:
            reader.execute("SELECT count(*) FROM asset").fetchall()
            with pytest.raises(BackupError, match="open elsewhere"):
                restore(make_settings(), target, other)
            assert count_rows(target, "asset") == 0
            restore(make_settings(), target, same)  # same page size: no need for the file alone
            assert count_rows(target, "asset") == 3
        finally:
            reader.close()
    finally:
        target.dispose()
