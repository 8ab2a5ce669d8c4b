"""Database outages: backends killed mid-pass, an outage longer than the run's own retries, a
database unreachable at start, and ``/health`` going 503 and recovering by itself."""

from __future__ import annotations

import gc
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from starlette.exceptions import StarletteDeprecationWarning

from kasparro.api import create_app
from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.ingestion.base import RunResult
from kasparro.pipeline.runner import run_pass
from tests.conftest import POSTGRES_ADMIN_URL, reset_postgres
from tests.fakes import FakeUpstream, coins
from tests.reliability.csvgen import append_rows
from tests.reliability.helpers import (
    cli_env,
    duplicates,
    history_counts,
    kasparro,
    scalar,
    settings_for,
    wait_for,
)
from tests.reliability.proxy import TcpProxy

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

WORLD = coins(20)
FINAL = {"success", "partial", "failed", "interrupted"}
CSV_ROWS = 8000


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    reset_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(WORLD) as server:
        yield server


def _settings(
    url: str,
    tmp_path: Path,
    upstream: FakeUpstream,
    rows: int = CSV_ROWS,
    commit_interval: float = 0,
) -> Settings:
    csv_path = tmp_path / "history.csv"
    if not csv_path.exists():
        append_rows(csv_path, WORLD, 0, rows)
    return settings_for(
        url,
        tmp_path,
        csv_path=csv_path,
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_base_url=upstream.coingecko_url,
        top_n=20,
        batch_size=100,
        # these tests watch a run's progress from outside before cutting the database: by default
        # commit every batch, or a short CSV run could finish inside one spanning transaction
        commit_interval=commit_interval,
    )


def _in_thread(settings: Settings, engine: Engine) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.extend(run_pass(settings, engine)))
    thread.start()
    return thread, results


def _csv_loaded(engine: Engine, at_least: int) -> Callable[[], bool]:
    sql = "SELECT coalesce(max(loaded), 0) FROM etl_run WHERE source = 'csv' AND status = 'running'"
    return lambda: int(scalar(engine, sql)) >= at_least


def _terminate_backends(database: str) -> int:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": database},
                ).all()
            )
    finally:
        admin.dispose()


def _assert_recovered(settings: Settings, engine: Engine) -> None:
    """The next pass, in the same process with the same engine, completes and reconciles."""
    results = run_pass(settings, engine)
    assert {r.source: r.status for r in results} == dict.fromkeys(settings.sources, "success")
    assert scalar(engine, "SELECT count(*) FROM etl_run WHERE status = 'running'") == 0
    assert history_counts(engine)["csv"] == CSV_ROWS
    assert duplicates(engine) == {}


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    "commit_interval",
    [
        pytest.param(0, id="commit-every-batch"),
        # the kill lands inside a transaction spanning several batches, which must roll back whole
        pytest.param(0.5, id="spanning-transactions"),
    ],
)
def test_backends_terminated_mid_pass_end_with_a_final_status_and_recover(
    pg_url: str, tmp_path: Path, upstream: FakeUpstream, commit_interval: float
) -> None:
    settings = _settings(pg_url, tmp_path, upstream, commit_interval=commit_interval)
    engine = make_engine(pg_url)
    try:
        thread, results = _in_thread(settings, engine)
        wait_for(_csv_loaded(engine, 1000), what="the CSV run to load 1000 rows")
        database = sa.engine.make_url(pg_url).database or ""
        killed = 0
        until = time.monotonic() + 0.4  # a restart is not one instant: keep killing for a while
        while time.monotonic() < until:
            killed += _terminate_backends(database)
            time.sleep(0.02)
        thread.join(timeout=120)
        assert not thread.is_alive()

        assert killed >= 1
        assert {r.status for r in results} <= FINAL
        stuck = scalar(engine, "SELECT count(*) FROM etl_run WHERE status = 'running'")
        assert stuck == 0
        _assert_recovered(settings, engine)
    finally:
        engine.dispose()
        gc.collect()


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_outage_longer_than_the_final_status_retries_leaves_no_run_running(
    pg_url: str, tmp_path: Path, upstream: FakeUpstream
) -> None:
    with TcpProxy(("127.0.0.1", sa.engine.make_url(pg_url).port or 5432)) as proxy:
        settings = _settings(proxy.url(pg_url), tmp_path, upstream, rows=1200)
        engine = make_engine(settings.database_url, pool_timeout=2.0)
        direct = make_engine(pg_url)
        try:
            thread, results = _in_thread(settings, engine)
            wait_for(_csv_loaded(direct, 200), what="the CSV run to load 200 rows")
            proxy.down()
            thread.join(timeout=8)  # longer than the three attempts to record the final status
            proxy.up()
            thread.join(timeout=60)
            assert {r.status for r in results} <= FINAL

            run_pass(settings, engine)  # the next pass in the same process

            assert scalar(direct, "SELECT count(*) FROM etl_run WHERE status = 'running'") == 0
        finally:
            engine.dispose()
            direct.dispose()
            gc.collect()  # close the dead connections' objects inside this test


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("postgresql+psycopg://kasparro:pw-SECRET-1234@127.0.0.1:9/kasparro", ("127.0.0.1", "9")),
        ("sqlite:////proc/kasparro-no-such-dir/kasparro.db", ("kasparro-no-such-dir",)),
    ],
    ids=["postgres-closed-port", "sqlite-unwritable-path"],
)
def test_database_unreachable_at_start_is_a_clear_error(
    tmp_path: Path, url: str, names: tuple[str, ...]
) -> None:
    env = cli_env(settings_for("sqlite:///unused.db", tmp_path)) | {"KASPARRO_DATABASE_URL": url}

    done = kasparro("etl", "run", env=env, timeout=60)

    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output
    assert "database" in output.lower()
    for name in names:
        assert name in output
    assert "pw-SECRET-1234" not in output


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_health_is_503_while_the_database_is_away_and_recovers_by_itself(pg_url: str) -> None:
    with TcpProxy(("127.0.0.1", sa.engine.make_url(pg_url).port or 5432)) as proxy:
        settings = settings_for(proxy.url(pg_url), Path("."), db_pool_timeout=1.0)
        with TestClient(create_app(settings)) as client:
            before = client.get("/health")
            proxy.down()
            during = [client.get("/health") for _ in range(3)]
            data_during = client.get("/data")
            proxy.up()
            after = client.get("/health")
            data_after = client.get("/data")

    gc.collect()
    assert before.status_code == 200
    assert [r.status_code for r in during] == [503, 503, 503]
    assert during[0].json()["database"]["reachable"] is False
    assert during[0].headers.get("retry-after")
    assert data_during.status_code == 503
    assert after.status_code == 200
    assert after.json()["database"]["reachable"] is True
    assert data_after.status_code == 200
