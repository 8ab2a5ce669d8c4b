"""Database outages: backends killed mid-pass, an outage longer than the run's own retries, a
database unreachable at start, and ``/health`` going 503 and recovering by itself."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from starlette.exceptions import StarletteDeprecationWarning

from kasparro.api import create_app
from kasparro.config import Settings
from kasparro.db.engine import alembic_config, current_revision, make_engine
from kasparro.ingestion.base import RunResult
from kasparro.pipeline.runner import run_pass
from kasparro.pipeline.verify import verify
from tests.conftest import POSTGRES_ADMIN_URL, empty_postgres_database, reset_postgres
from tests.fakes import FakeUpstream, coins
from tests.reliability.csvgen import append_rows
from tests.reliability.helpers import (
    cli_env,
    duplicates,
    history_counts,
    kasparro,
    loaded_totals,
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
    history = history_counts(engine)
    assert history["csv"] == CSV_ROWS
    assert duplicates(engine) == {}
    # every record the upstream served and every CSV row counted as loaded exactly once
    assert loaded_totals(engine) == history
    report = verify(engine)
    assert report.ok, report.problems


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
            history = history_counts(direct)
            assert history["csv"] == 1200
            assert duplicates(direct) == {}
            assert loaded_totals(direct) == history
            report = verify(direct)
            assert report.ok, report.problems
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(base: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{base}/health", timeout=5)
    except httpx.HTTPError:
        return None  # not listening yet


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["serve", "api", "scheduler"])
def test_a_service_started_before_its_database_waits_for_it_and_recovers_by_itself(
    command: str, tmp_path: Path, upstream: FakeUpstream
) -> None:
    """The real process, its database unreachable at start: a clear error, no exit; ``/health``
    503 while it is away; once it answers, the schema is brought to head (the database is empty
    at first), ``/health`` recovers and the first pass runs, all without a restart."""
    with empty_postgres_database("kasparro_gate") as url, TcpProxy(("127.0.0.1", sa.engine.make_url(url).port or 5432)) as proxy:  # fmt: skip
        proxy.down()
        env = cli_env(
            _settings(proxy.url(url), tmp_path, upstream, rows=300), KASPARRO_SCHEDULE="6h"
        )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        ports = [] if command == "scheduler" else ["--port", str(port)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "kasparro", command, *ports],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
        reader.start()
        engine = make_engine(url)  # straight to the database, around the proxy
        try:
            wait_for(
                lambda: any("database unreachable at start" in line for line in lines),
                timeout=60,
                what="the start-up error",
            )
            if command != "scheduler":
                wait_for(lambda: _health(base) is not None, timeout=30, what="the API to listen")
                away = _health(base)
                assert away is not None
                assert away.status_code == 503
                assert away.json()["database"]["reachable"] is False
                assert away.json()["reasons"] == ["database unreachable"]
            assert proc.poll() is None, "the service exited instead of waiting for its database"
            with engine.connect() as conn:
                assert not sa.inspect(conn).has_table("etl_run")  # nothing was migrated yet

            proxy.up()
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            wait_for(
                lambda: (
                    sa.inspect(engine).has_table("alembic_version")
                    and current_revision(engine) == head
                ),
                timeout=60,
                what="the schema to reach head",
            )
            if command != "scheduler":
                wait_for(
                    lambda: (r := _health(base)) is not None and r.status_code == 200,
                    timeout=30,
                    what="/health to recover",
                )
            if command != "api":
                final = "SELECT count(*) FROM etl_run WHERE status = 'success'"
                wait_for(
                    lambda: scalar(engine, final) == len(settings_for(url, tmp_path).sources),
                    timeout=60,
                    what="the first pass to complete",
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            reader.join(timeout=10)
            proc.stdout.close()  # type: ignore[union-attr]
        output = "".join(lines)
        report = verify(engine)
        engine.dispose()

    assert proc.returncode == 0, output
    assert "database unreachable at start" in output, output
    assert "Traceback" not in output
    assert report.ok, report.problems


def test_health_says_when_the_database_answers_but_its_schema_is_not_there(
    tmp_path: Path,
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["reasons"] == ["database schema not ready"]
    assert response.json()["database"]["reachable"] is True


def _restart_postgresql() -> None:
    """Restart the local cluster for real (fast shutdown: every backend is terminated)."""
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow  # restarts the shared server: run alone, by `make reliability`, never in CI
@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None, reason="needs the local cluster's tools")
def test_postgresql_restarted_mid_pass_ends_with_a_final_status_and_recovers(
    pg_url: str, tmp_path: Path, upstream: FakeUpstream
) -> None:
    settings = _settings(pg_url, tmp_path, upstream)
    engine = make_engine(settings.database_url)
    try:
        thread, results = _in_thread(settings, engine)
        wait_for(_csv_loaded(engine, 500), what="the CSV run to load 500 rows")
        _restart_postgresql()
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert {r.status for r in results} <= FINAL
        assert scalar(engine, "SELECT count(*) FROM etl_run WHERE status = 'running'") == 0
        interrupted = [r for r in results if r.status != "success"]
        print(f"\nPostgreSQL restarted mid-pass: runs {[(r.source, r.status) for r in results]}")
        assert interrupted, "the restart hit no run"
        _assert_recovered(settings, engine)  # the next pass, same process, same engine
    finally:
        engine.dispose()
        gc.collect()
