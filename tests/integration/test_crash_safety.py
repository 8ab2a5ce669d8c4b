"""SIGKILL the pipeline mid-run at several points, run again: nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.conftest import count_rows
from tests.fakes import FakeUpstream, coins, write_history_csv

WORLD = coins(40)
CSV_COINS = 40
CSV_DAYS = 300  # 12,000 rows: long enough to be killed in the middle


def _env(settings: Settings, commit_interval: float = 0) -> dict[str, str]:
    """The pipeline's environment; by default it commits every batch, so each batch is a kill point."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASPARRO_")}
    env.update(
        KASPARRO_DATABASE_URL=settings.database_url,
        KASPARRO_CSV_PATH=str(settings.csv_path),
        KASPARRO_COINPAPRIKA_BASE_URL=settings.coinpaprika_url,
        KASPARRO_COINGECKO_BASE_URL=settings.coingecko_url,
        KASPARRO_COINPAPRIKA_MIN_INTERVAL="0",
        KASPARRO_COINGECKO_MIN_INTERVAL="0.2",
        KASPARRO_COINGECKO_PER_PAGE="10",
        KASPARRO_TOP_N="40",
        KASPARRO_BATCH_SIZE="200",
        KASPARRO_LOG_LEVEL="WARNING",
        KASPARRO_COMMIT_INTERVAL=str(commit_interval),
    )
    return env


def _wait_for_progress(
    engine: Engine, source: str, at_least: int, proc: subprocess.Popen[bytes], timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the pipeline exited ({proc.returncode}) before reaching the kill point")
        with engine.connect() as conn:
            loaded = conn.execute(
                sa.text(
                    "SELECT coalesce(max(loaded), 0) FROM etl_run WHERE status = 'running' AND source = :s"
                ),
                {"s": source},
            ).scalar_one()
        if loaded >= at_least:
            return
        time.sleep(0.01)
    pytest.fail("the kill point was never reached")


@pytest.mark.parametrize("kill_after_rows", [200, 3000, 9000])
def test_sigkill_mid_run_then_rerun_is_consistent(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path, kill_after_rows: int
) -> None:
    csv_path = tmp_path / "history.csv"
    total_rows = write_history_csv(csv_path, WORLD[:CSV_COINS], days=CSV_DAYS, layout="kaggle")
    with FakeUpstream(WORLD, latency=(0.01, 0.03)) as upstream:
        settings = make_settings(
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            csv_path=csv_path,
            top_n=40,
            batch_size=200,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "kasparro", "etl", "run"],
            env=_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_progress(engine, "csv", kill_after_rows, proc)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
            assert proc.stderr is not None
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL

        results = {r.source: r for r in run_pass(settings, engine)}

    assert all(r.status == "success" for r in results.values()), results
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.text("SELECT source, status FROM etl_run WHERE id NOT IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": [r.run_id for r in results.values()]},
            ).all()
        )
        csv_loaded_total = conn.execute(
            sa.text("SELECT sum(loaded) FROM etl_run WHERE source = 'csv'")
        ).scalar_one()
        offset = conn.execute(
            sa.text("SELECT state FROM etl_checkpoint WHERE source = 'csv'")
        ).scalar_one()
        duplicates = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT asset_id, source, observed_at FROM price_history GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
            )
        ).scalar_one()
    assert statuses["csv"] == "interrupted"
    assert set(statuses.values()) <= {"interrupted", "success"}
    assert count_rows(engine, "raw_csv") == total_rows
    assert (
        csv_loaded_total == total_rows
    )  # every row loaded exactly once across the killed and the next run
    assert duplicates == 0
    assert count_rows(engine, "price_history") == total_rows + 40 + 40
    assert count_rows(engine, "raw_coingecko") == 40
    assert count_rows(engine, "raw_coinpaprika") == 40
    state = offset if isinstance(offset, dict) else json.loads(offset)
    assert state["offset"] == csv_path.stat().st_size


def test_sigkill_inside_a_transaction_spanning_batches_loses_only_that_transaction(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    """With a long commit interval the CSV run is one open transaction (on SQLite; PostgreSQL
    also commits each batch that created assets): killed inside it, what it held is gone,
    checkpoint and counters included, and the next run loads every row exactly once."""
    csv_path = tmp_path / "history.csv"
    total_rows = write_history_csv(csv_path, WORLD[:CSV_COINS], days=1000, layout="kaggle")
    settings = make_settings(csv_path=csv_path, sources=["csv"], batch_size=200)
    env = {**_env(settings, commit_interval=60), "KASPARRO_SOURCES": "csv"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kasparro", "etl", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        held = 0  # consecutive polls that found the run's write transaction open
        while held < 3 and time.monotonic() < deadline and proc.poll() is None:
            held = held + 1 if _write_transaction_open(engine, settings) else 0
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert held == 3, "the run's write transaction was never seen open"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    with engine.connect() as conn:
        committed = conn.execute(sa.text("SELECT loaded FROM etl_run")).scalar_one()
        checkpoints = conn.execute(sa.text("SELECT count(*) FROM etl_checkpoint")).scalar_one()
    # the run's counters and checkpoint committed with exactly the rows they cover; on SQLite the
    # open transaction held everything, on PostgreSQL batches that created assets committed early
    assert count_rows(engine, "raw_csv") == committed < total_rows
    assert checkpoints == (1 if committed else 0)
    if engine.dialect.name == "sqlite":
        assert committed == 0

    [result] = run_pass(settings, engine)
    assert result.status == "success"
    assert result.loaded == total_rows - committed
    assert count_rows(engine, "raw_csv") == total_rows
    assert count_rows(engine, "price_history") == total_rows


def _write_transaction_open(engine: Engine, settings: Settings) -> bool:
    """Whether the run, once registered, holds a transaction that has written (PostgreSQL) or
    the write lock (SQLite; probed on a plain connection, as the test's engine would queue)."""
    if engine.dialect.name == "sqlite":
        probe = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), timeout=0)
        try:
            if not probe.execute("SELECT count(*) FROM etl_run").fetchone()[0]:
                return False
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                )
            ).scalar_one()
        )


def test_killed_run_is_marked_interrupted_on_next_start(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    from kasparro.db.runs import HOSTNAME, mark_stale_runs_interrupted

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO etl_run (source, status, trigger, started_at, fetched, loaded, unchanged, quarantined, drift_events, requests, retries, hostname, pid) "
                    "VALUES ('csv', 'running', 'manual', :t, 0, 0, 0, 0, 0, 0, 0, :h, :p)"),
            {"t": "2026-01-01 00:00:00", "h": HOSTNAME, "p": dead.pid},
        )  # fmt: skip
    assert mark_stale_runs_interrupted(engine) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM etl_run")).scalar_one() == "interrupted"
