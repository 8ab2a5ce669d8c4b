"""The runner's guards: a stop starts no further run, and a source locked elsewhere is skipped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.db.runs import RunCounts
from kasparro.pipeline import runner
from kasparro.pipeline.breaker import CircuitBreaker
from kasparro.pipeline.locks import source_lock
from kasparro.pipeline.runner import NOT_STARTED, run_pass, run_source
from tests.conftest import count_rows
from tests.fakes import FakeUpstream, coins, write_history_csv
from tests.reliability.helpers import rows

WORLD = coins(10)
LOCKED = "another run of this source holds the lock"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(WORLD) as fake:
        yield fake


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], upstream: FakeUpstream, tmp_path: Path
) -> Settings:
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, WORLD[:4], days=5)  # 20 rows: 4 batches of 5
    return make_settings(
        csv_path=csv_path,
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_base_url=upstream.coingecko_url,
        top_n=10,
        batch_size=5,
        commit_interval=0.0,  # every batch commits, and reports progress
        sources=["csv", "coinpaprika", "coingecko"],
    )


def _runs(engine: Engine) -> dict[str, str]:
    return dict(rows(engine, "SELECT source, status FROM etl_run"))


@pytest.mark.parametrize(
    ("sequential", "stop_when", "expected"),
    [
        # the bug: a sequential pass went on starting sources after the stop
        pytest.param(
            True, "first progress", {"csv": "interrupted"}, id="sequential-stop-mid-first-source"
        ),
        pytest.param(True, "before the pass", {}, id="sequential-stop-before-pass"),
        pytest.param(False, "before the pass", {}, id="concurrent-stop-before-pass"),
    ],
)
def test_after_a_stop_no_source_starts_a_run(
    settings: Settings,
    engine: Engine,
    upstream: FakeUpstream,
    sequential: bool,
    stop_when: str,
    expected: dict[str, str],
) -> None:
    settings = settings.model_copy(update={"sequential": sequential})
    stop = threading.Event()
    if stop_when == "before the pass":
        stop.set()

    def progress(_source: str, _counts: RunCounts) -> None:
        stop.set()  # a SIGTERM arriving once the first batch has committed

    results = run_pass(settings, engine, stop=stop, progress=progress)

    by_source = {r.source: r for r in results}
    assert [r.source for r in results] == ["csv", "coinpaprika", "coingecko"]
    assert _runs(engine) == expected  # a source not started has no etl_run row
    for name, result in by_source.items():
        if name in expected:
            assert result.status == expected[name]
            assert result.run_id is not None
        else:
            assert (result.status, result.error, result.run_id) == ("skipped", NOT_STARTED, None)
    assert upstream.requests() == []  # not even a request from a source not started
    if expected:
        (fetched, loaded, unchanged, quarantined) = rows(
            engine, "SELECT fetched, loaded, unchanged, quarantined FROM etl_run"
        )[0]
        assert 0 < loaded < 20  # what committed before the stop, and no more
        assert fetched == loaded + unchanged + quarantined
        assert count_rows(engine, "price_history") == loaded


def test_a_source_locked_elsewhere_is_skipped_then_runs_once_released(
    settings: Settings, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "LOCK_PATIENCE", 0.3)  # a held lock stays held; do not wait 3 s
    elsewhere = make_engine(db_url)  # another connection (PostgreSQL) or open file (SQLite)
    try:
        with source_lock(elsewhere, "csv") as held:
            assert held
            skipped = run_source(settings, engine, "csv")
            assert (skipped.status, skipped.error, skipped.run_id) == ("skipped", LOCKED, None)
            assert skipped.fetched == 0
            assert _runs(engine) == {}
            assert count_rows(engine, "price_history") == 0
            other = run_source(settings, engine, "coinpaprika")  # only that source is locked
            assert other.status == "success"
    finally:
        elsewhere.dispose()

    ran = run_source(settings, engine, "csv")

    assert (ran.status, ran.loaded) == ("success", 20)
    assert _runs(engine) == {"coinpaprika": "success", "csv": "success"}


def test_a_stop_while_waiting_for_the_lock_ends_the_wait(
    settings: Settings, engine: Engine, db_url: str
) -> None:
    stop = threading.Event()
    elsewhere = make_engine(db_url)
    timer = threading.Timer(0.2, stop.set)
    try:
        with source_lock(elsewhere, "csv") as held:
            assert held
            timer.start()
            started = time.monotonic()
            result = run_source(settings, engine, "csv", stop=stop)
            waited = time.monotonic() - started
    finally:
        timer.cancel()
        elsewhere.dispose()

    assert (result.status, result.error) == ("skipped", NOT_STARTED)
    assert waited < runner.LOCK_PATIENCE / 2  # did not wait out its patience
    assert _runs(engine) == {}


def test_a_source_skipped_for_its_lock_leaves_the_breaker_probe_to_the_run_that_gets_it(
    settings: Settings, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open breaker whose cool-down is over hands out one probe. A source skipped before its
    run (here: locked elsewhere) must not take that probe, or no replica could probe it for a
    whole cool-down."""
    monkeypatch.setattr(runner, "LOCK_PATIENCE", 0.3)
    breaker = CircuitBreaker(engine, threshold=1, cooldown=0.0)
    breaker.record("csv", success=False)  # open; with no cool-down, the next run may probe
    assert breaker.states()["csv"]["state"] == "open"
    elsewhere = make_engine(db_url)
    try:
        with source_lock(elsewhere, "csv") as held:
            assert held
            skipped = run_source(settings, engine, "csv", breaker=breaker)
            assert (skipped.status, skipped.error) == ("skipped", LOCKED)
            assert breaker.states()["csv"]["state"] == "open"  # the probe is still on offer
    finally:
        elsewhere.dispose()

    probe = run_source(settings, engine, "csv", breaker=breaker)

    assert probe.status == "success"
    assert breaker.states()["csv"]["state"] == "closed"
