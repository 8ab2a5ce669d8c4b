"""SIGKILL ``kasparro etl run`` at many points across passes, sources running concurrently:
nothing duplicated, nothing lost, killed runs marked interrupted, the next pass completes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.pipeline.runner import run_pass
from tests.fakes import FakeUpstream, advance, coins
from tests.reliability.csvgen import append_rows
from tests.reliability.helpers import (
    cli_env,
    duplicates,
    history_counts,
    kasparro,
    loaded_totals,
    rows,
    scalar,
)

WORLD = coins(40)
CSV_ROWS_PER_PASS = 2500


@dataclass(frozen=True)
class KillPoint:
    """Kill once ``source``'s running run has loaded ``loaded`` rows, ``delay`` s after spawning,
    or ``after_open`` s after the pass opened its first run (at a moment a run is in flight)."""

    name: str
    source: str | None = None
    loaded: int = 0
    delay: float | None = None
    after_open: float | None = None

    def reached(self, engine: Engine, started: float, opened: list[float]) -> bool:
        if self.delay is not None:
            return time.monotonic() - started >= self.delay
        if self.after_open is not None:
            running = scalar(engine, "SELECT count(*) FROM etl_run WHERE status = 'running'")
            if not opened and running:
                opened.append(time.monotonic())
            # a kill that falls between one source's run and the next interrupts nothing (seen
            # on SQLite, where a CSV run can end before the others open theirs): wait for a run
            # in flight, so each timed point does interrupt one
            return bool(opened) and time.monotonic() - opened[0] >= self.after_open and running > 0
        sql = "SELECT coalesce(max(loaded), -1) FROM etl_run WHERE status = 'running'"
        if self.source is not None:
            sql += " AND source = :s"
        return int(scalar(engine, sql, s=self.source)) >= self.loaded


ALL_POINTS = [
    KillPoint("csv-200", "csv", 200),
    KillPoint("gecko-page-1", "coingecko", 10),
    KillPoint("any-run-opened", None, 0),
    KillPoint("csv-2000", "csv", 2000),
    KillPoint("startup-0.2s", delay=0.2),
    KillPoint("paprika-fetching", "coinpaprika", 0),
    KillPoint("gecko-page-2", "coingecko", 20),
    KillPoint("csv-400", "csv", 400),
    KillPoint("startup-0.6s", delay=0.6),
    KillPoint("gecko-page-3", "coingecko", 30),
    KillPoint("csv-1000", "csv", 1000),
    KillPoint("csv-opened", "csv", 0),
    KillPoint("gecko-opened", "coingecko", 0),
    KillPoint("opened+0.15s", after_open=0.15),
    KillPoint("csv-1600", "csv", 1600),
    KillPoint("csv-100", "csv", 100),
    KillPoint("opened+0.3s", after_open=0.3),
    KillPoint("csv-2200", "csv", 2200),
    KillPoint("opened+0.05s", after_open=0.05),
    KillPoint("opened+0.5s", after_open=0.5),
]
CI_POINTS = [
    p for p in ALL_POINTS if p.name in ("csv-200", "gecko-page-1", "any-run-opened", "csv-1000")
]
# points that do not wait for committed progress (a fixed time after the pass opened its first
# run): they also fall inside transactions that span batches, as with the default interval
TIMED_POINTS = [p for p in ALL_POINTS if p.after_open is not None]


def _kill_at(point: KillPoint, env: dict[str, str], engine: Engine) -> tuple[int, list[int]]:
    """Start a pass in a subprocess, SIGKILL it at ``point``; return its pid and the runs it left open.

    The kill point is watched through a read-only engine: on SQLite a writer's connection waits
    for the write lock, which the pass's commits can keep from it past the kill point."""
    watcher = make_engine(env["KASPARRO_DATABASE_URL"], writer=False)
    try:
        return _kill_when(point, env, engine, watcher)
    finally:
        watcher.dispose()


def _kill_when(
    point: KillPoint, env: dict[str, str], engine: Engine, watcher: Engine
) -> tuple[int, list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kasparro", "etl", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started, opened = time.monotonic(), []
    try:
        while not point.reached(watcher, started, opened):
            if proc.poll() is not None:
                pytest.fail(
                    f"{point.name}: the pass ended ({proc.returncode}) before the kill point"
                )
            if time.monotonic() - started > 60:
                pytest.fail(f"{point.name}: the kill point was never reached")
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    left = [r.id for r in rows(engine, "SELECT id FROM etl_run WHERE status = 'running'")]
    return proc.pid, left


def _note_served(upstream: FakeUpstream, served: dict[str, set[tuple[str, str]]]) -> None:
    for name, served_rows in (
        ("coinpaprika", upstream.paprika_rows),
        ("coingecko", upstream.gecko_rows),
    ):
        served[name] |= {(str(r["id"]), str(r["last_updated"])) for r in served_rows}


@pytest.mark.parametrize(
    ("points", "commit_interval"),
    [
        # every batch commits, so kill points on committed progress fall between batches
        pytest.param(CI_POINTS, 0.0, id="ci-4-points"),
        pytest.param(TIMED_POINTS[:3], None, id="ci-3-timed-points-default-interval"),
        pytest.param(ALL_POINTS, 0.0, id="soak-20-points", marks=pytest.mark.slow),
        pytest.param(
            TIMED_POINTS, None, id="soak-timed-points-default-interval", marks=pytest.mark.slow
        ),
    ],
)
def test_sigkill_at_many_points_loses_and_duplicates_nothing(
    make_settings: Callable[..., Settings],
    engine: Engine,
    tmp_path: Path,
    points: list[KillPoint],
    commit_interval: float | None,
) -> None:
    csv_path = tmp_path / "growing.csv"
    next_row = append_rows(csv_path, WORLD, 0, CSV_ROWS_PER_PASS)
    world = WORLD
    served: dict[str, set[tuple[str, str]]] = {"coinpaprika": set(), "coingecko": set()}
    interrupted_seen = 0
    with FakeUpstream(world, latency=(0.02, 0.06)) as upstream:
        settings = make_settings(
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            csv_path=csv_path,
            top_n=40,
            batch_size=10,  # one page of 10 per batch, so kill points fall between pages
            coingecko_per_page=10,
            coingecko_min_interval=0.2,
            **({} if commit_interval is None else {"commit_interval": commit_interval}),
        )
        env = cli_env(settings)
        for number, point in enumerate(points):
            if number:  # every kill point meets new upstream prices and new CSV rows
                world = advance(world, minutes=5, seed=number)
                upstream.set_coins(world)
                next_row = append_rows(csv_path, WORLD, next_row, CSV_ROWS_PER_PASS)
            _note_served(upstream, served)
            killed_pid, left_open = _kill_at(point, env, engine)

            results = run_pass(settings, engine)  # the next pass, in a fresh process state

            assert {r.source: r.status for r in results} == dict.fromkeys(
                settings.sources, "success"
            ), (
                point.name,
                results,
            )
            assert scalar(engine, "SELECT count(*) FROM etl_run WHERE status = 'running'") == 0
            for run_id in left_open:
                status = scalar(engine, "SELECT status FROM etl_run WHERE id = :i", i=run_id)
                assert status == "interrupted", (point.name, run_id, status)
            statuses = {
                s
                for (s,) in rows(engine, "SELECT status FROM etl_run WHERE pid = :p", p=killed_pid)
            }
            assert statuses <= {"interrupted", "success"}, (point.name, statuses)
            interrupted_seen += len(left_open)
            assert duplicates(engine) == {}, point.name

    total_csv_rows = next_row
    history = history_counts(engine)
    # reconcile against what was served: one point per distinct (coin, last_updated), every CSV row
    expected = {name: len(keys) for name, keys in served.items()} | {"csv": total_csv_rows}
    assert history == expected
    assert loaded_totals(engine) == history  # each record counted as loaded exactly once
    assert scalar(engine, "SELECT count(*) FROM raw_csv") == total_csv_rows
    assert scalar(engine, "SELECT count(*) FROM raw_coingecko") == expected["coingecko"]
    assert scalar(engine, "SELECT count(*) FROM quarantine") == 0
    assert interrupted_seen >= len([p for p in points if p.delay is None])
    killed_runs = scalar(engine, "SELECT count(*) FROM etl_run WHERE status = 'interrupted'")
    print(
        f"\nkill points survived: {len(points)}; runs interrupted: {killed_runs}; "
        f"records reconciled: {sum(history.values())} ({history})"
    )
    with engine.connect() as conn:
        state = conn.execute(
            sa.select(sa.text("state FROM etl_checkpoint WHERE source = 'csv'"))
        ).scalar_one()
    offset = (
        state["offset"] if isinstance(state, dict) else __import__("json").loads(state)["offset"]
    )
    assert offset == csv_path.stat().st_size
    verify = kasparro("db", "verify", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
