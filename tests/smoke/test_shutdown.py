"""SIGTERM to a real `kasparro serve` / `kasparro scheduler` with a run in flight: the batch in
flight commits, the run is marked interrupted, no new run starts, and the next pass completes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.pipeline.runner import run_pass
from kasparro.pipeline.verify import verify
from tests.fakes import FakeUpstream, coins, write_history_csv
from tests.reliability.helpers import cli_env, duplicates, history_counts, rows, scalar
from tests.smoke.test_serve import _free_port

WORLD = coins(50)
PAGE = 10  # CoinGecko rows per page, and per batch
CSV_ROWS = 20
SOURCES = ["coinpaprika", "coingecko", "csv"]  # the order a sequential pass runs them in


@dataclass
class Service:
    """A ``python -m kasparro <command>`` process whose output is collected as it comes."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"exited with {self.proc.returncode} before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}:\n{self.output[-3000:]}")
            time.sleep(0.02)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(WORLD) as fake:
        yield fake


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], upstream: FakeUpstream, tmp_path: Path
) -> Settings:
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, WORLD[:4], days=5)
    return make_settings(
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_base_url=upstream.coingecko_url,
        csv_path=csv_path,
        top_n=len(WORLD),
        coingecko_per_page=PAGE,
        batch_size=PAGE,
        commit_interval=0.0,
        http_timeout=30.0,  # the held request must not time out while the test holds it
        sources=SOURCES,
    )


@pytest.fixture
def watcher(db_url: str) -> Iterator[Engine]:
    """Reads while the service writes (on SQLite a writer's connection would queue for the lock)."""
    eng = make_engine(db_url, writer=False)
    yield eng
    eng.dispose()


def _start(command: str, settings: Settings, **env: str) -> Service:
    args = [sys.executable, "-m", "kasparro", command]
    if command == "serve":
        args += ["--port", str(_free_port())]
    proc = subprocess.Popen(
        args,
        env=cli_env(
            settings,
            KASPARRO_SOURCES=",".join(SOURCES),
            KASPARRO_SCHEDULE="6h",
            KASPARRO_LOG_LEVEL="INFO",
            **env,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Service(proc)


def _stop(service: Service) -> None:
    if service.proc.poll() is None:
        service.proc.kill()
    service.proc.wait(timeout=10)
    service.reader.join(timeout=5)
    assert service.proc.stdout is not None
    service.proc.stdout.close()


def _statuses(engine: Engine) -> dict[str, str]:
    return {
        str(source): str(status)
        for source, status in rows(engine, "SELECT source, status FROM etl_run")
    }


def _gecko_run(engine: Engine) -> tuple[str, int] | None:
    found = rows(engine, "SELECT status, loaded FROM etl_run WHERE source = 'coingecko'")
    return (str(found[0][0]), int(found[0][1])) if found else None


@pytest.mark.parametrize(
    ("command", "sequential"),
    [
        pytest.param("serve", False, id="serve-concurrent"),
        pytest.param("scheduler", True, id="scheduler-sequential"),
    ],
)
def test_sigterm_mid_run_commits_marks_interrupted_and_starts_nothing_new(
    settings: Settings,
    engine: Engine,
    watcher: Engine,
    upstream: FakeUpstream,
    command: str,
    sequential: bool,
) -> None:
    upstream.hold("coingecko", after=1)  # page 1 is answered, page 2 waits: a run in flight
    service = _start(command, settings, KASPARRO_SEQUENTIAL=str(sequential).lower())
    try:
        # in a concurrent pass the other sources end alongside; in a sequential one csv waits
        before = {"coinpaprika": "success", "coingecko": "running"}
        if not sequential:
            before["csv"] = "success"
        service.wait_for(
            lambda: (
                upstream.held("coingecko") == 1
                and _gecko_run(watcher) == ("running", PAGE)
                and _statuses(watcher) == before
            ),
            "a CoinGecko run in flight with page 1 committed, the other runs ended",
        )
        service.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        # page 2 is answered only once the stop is set, so the run cannot have ended by itself
        service.wait_for(lambda: "SIGTERM received" in service.output, "the stop")
        upstream.release("coingecko")
        assert service.proc.wait(timeout=15) == 0, service.output
        exited_after = time.monotonic() - sent
    finally:
        _stop(service)

    assert exited_after < 10
    assert scalar(engine, "SELECT count(*) FROM etl_run WHERE status = 'running'") == 0
    runs = {
        r.source: r
        for r in rows(
            engine, "SELECT source, status, fetched, loaded, unchanged, quarantined FROM etl_run"
        )
    }
    gecko = runs["coingecko"]
    # the page fetched after the stop is not stored; what committed before it is counted
    assert (gecko.status, gecko.loaded) == ("interrupted", PAGE)
    assert gecko.fetched == gecko.loaded + gecko.unchanged + gecko.quarantined
    assert len(upstream.requests("coingecko")) == 2  # no page requested after the stop
    assert runs["coinpaprika"].status == "success"
    if sequential:
        assert "csv" not in runs  # its turn came after the stop: it never started
    else:
        assert runs["csv"].status == "success"  # it ran alongside, before the stop
    assert history_counts(engine)["coingecko"] == PAGE
    assert duplicates(engine) == {}
    assert verify(engine).ok, verify(engine).problems

    results = run_pass(settings, engine)  # the next pass completes the work

    assert {r.source: r.status for r in results} == dict.fromkeys(SOURCES, "success")
    assert history_counts(engine) == {"coinpaprika": 50, "coingecko": 50, "csv": CSV_ROWS}
    assert duplicates(engine) == {}
    assert verify(engine).ok, verify(engine).problems


def test_scheduler_runs_a_pass_at_start_then_waits_until_sigterm(
    settings: Settings, watcher: Engine
) -> None:
    service = _start("scheduler", settings)
    try:
        service.wait_for(
            lambda: (
                scalar(watcher, "SELECT count(*) FROM etl_run WHERE status = 'success'")
                == len(SOURCES)
            ),
            "the pass at start",
        )
        time.sleep(0.5)
        assert service.proc.poll() is None  # waiting for the next due time, 6 h away
        assert rows(watcher, "SELECT DISTINCT trigger FROM etl_run") == [("schedule",)]
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(timeout=10) == 0, service.output
    finally:
        _stop(service)
    assert scalar(watcher, "SELECT count(*) FROM etl_run") == len(SOURCES)  # one pass, no more
    assert "scheduler stopped after 1 pass(es)" in service.output
