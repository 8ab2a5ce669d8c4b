"""The scheduler loop with frozen time: cadence, no overlap, one catch-up, stop, replicas."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.db.models import Base
from kasparro.pipeline.backup import list_backups
from kasparro.pipeline.scheduler import Scheduler, install_signal_handlers

H = timedelta(hours=1)
ETL_RUN = Base.metadata.tables["etl_run"]


def record_run(engine: Engine, started_at: datetime, trigger: str = "schedule") -> None:
    with engine.begin() as conn:
        conn.execute(
            ETL_RUN.insert().values(
                source="csv", status="success", trigger=trigger, started_at=started_at
            )
        )


class FakeTime:
    """A clock that only moves when the scheduler waits (or a fake run takes time)."""

    def __init__(self, stop: threading.Event, *, until: timedelta) -> None:
        self.start = datetime(2030, 1, 1, 0, 20, tzinfo=UTC)
        self.now = self.start
        self.until = self.start + until
        self.stop = stop
        self.waits: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        if self.now >= self.until:
            self.stop.set()

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.advance(seconds)
        return self.stop.is_set()


class FakeRun:
    """Stands in for run_pass: writes the etl_run row a real pass would, takes ``duration``."""

    def __init__(
        self, time: FakeTime, engine: Engine, *, duration: timedelta = timedelta(0), fail: int = 0
    ) -> None:
        self.time, self.engine, self.duration, self.fail = time, engine, duration, fail
        self.calls: list[dict[str, Any]] = []

    def __call__(self, settings: Settings, engine: Engine, **kwargs: Any) -> list[Any]:
        self.calls.append({"at": self.time.now, **kwargs})
        record_run(self.engine, self.time.now)
        self.time.advance(self.duration.total_seconds())
        if len(self.calls) <= self.fail:
            raise RuntimeError("upstream exploded")
        return []

    def offsets(self) -> list[timedelta]:
        return [call["at"] - self.time.start for call in self.calls]


@pytest.fixture
def make_scheduler(
    make_settings: Callable[..., Settings], engine: Engine
) -> Callable[..., tuple[Scheduler, FakeTime, FakeRun]]:
    def factory(
        *,
        schedule: str = "1h",
        until: timedelta = 3.5 * H,
        duration: timedelta = timedelta(0),
        fail: int = 0,
        env: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[Scheduler, FakeTime, FakeRun]:
        stop = threading.Event()
        time = FakeTime(stop, until=until)
        run = FakeRun(time, engine, duration=duration, fail=fail)
        kwargs.setdefault("mark_stale", lambda _engine: 0)
        scheduler = Scheduler(
            make_settings(schedule=schedule, **(env or {})),
            engine,
            run=run,
            clock=time.clock,
            wait=time.wait,
            stop=stop,
            max_nap=900,
            **kwargs,
        )
        return scheduler, time, run

    return factory


def test_runs_at_start_then_on_the_interval(make_scheduler: Callable[..., Any]) -> None:
    scheduler, time, run = make_scheduler(schedule="1h", until=3.5 * H)
    scheduler.run_forever()
    assert run.offsets() == [0 * H, 1 * H, 2 * H, 3 * H]
    assert all(
        call["trigger"] == "schedule" and call["stop"] is scheduler.stop for call in run.calls
    )
    assert [call["due_at"] - time.start for call in run.calls] == [0 * H, 1 * H, 2 * H, 3 * H]
    assert max(time.waits) <= 900


def test_cron_schedule_runs_on_its_slots(make_scheduler: Callable[..., Any]) -> None:
    scheduler, _time, run = make_scheduler(schedule="0 * * * *", until=2.5 * H)
    scheduler.run_forever()
    assert [call["at"].strftime("%H:%M:%S") for call in run.calls] == [
        "00:20:00",
        "01:00:00",
        "02:00:00",
    ]


def test_a_slow_run_is_never_overlapped_and_is_followed_by_one_catch_up(
    make_scheduler: Callable[..., Any],
) -> None:
    scheduler, _time, run = make_scheduler(schedule="1h", until=6 * H, duration=2.5 * H)
    scheduler.run_forever()
    # each run starts when the previous ended; the missed slots collapse into one catch-up run
    assert run.offsets() == [0 * H, 2.5 * H, 5 * H]
    assert [call["due_at"] for call in run.calls] == [call["at"] for call in run.calls]


@pytest.mark.parametrize(
    ("last_run_ago", "run_on_start", "expected"),
    [
        (None, False, [0 * H, 6 * H]),  # fresh database: run now
        (72 * H, False, [0 * H, 6 * H]),  # three days down: exactly one catch-up, not twelve
        (2 * H, False, [4 * H]),  # ran recently (another process): wait for its next slot
        (2 * H, True, [0 * H, 6 * H]),  # but a start run was asked for
    ],
)
def test_catch_up_after_downtime(
    make_scheduler: Callable[..., Any],
    engine: Engine,
    last_run_ago: timedelta | None,
    run_on_start: bool,
    expected: list[timedelta],
) -> None:
    scheduler, time, run = make_scheduler(schedule="6h", until=7 * H, run_on_start=run_on_start)
    if last_run_ago is not None:
        record_run(engine, time.start - last_run_ago)
    scheduler.run_forever()
    assert run.offsets() == expected


def test_manual_runs_do_not_shift_the_schedule(
    make_scheduler: Callable[..., Any], engine: Engine
) -> None:
    scheduler, time, run = make_scheduler(schedule="6h", until=1 * H, run_on_start=False)
    record_run(engine, time.start - 1 * H, trigger="manual")
    scheduler.run_forever()
    assert run.offsets() == [0 * H]


def test_a_failed_pass_does_not_stop_the_loop_nor_retry_at_once(
    make_scheduler: Callable[..., Any],
) -> None:
    scheduler, _time, run = make_scheduler(schedule="1h", until=1.5 * H, fail=1)
    scheduler.run_forever()
    assert run.offsets() == [0 * H, 1 * H]
    assert scheduler.passes == 1


def test_stop_during_a_run_ends_the_loop_after_it(make_scheduler: Callable[..., Any]) -> None:
    scheduler, _time, run = make_scheduler(schedule="1h", until=10 * H)
    original = run.__call__

    def run_then_signal(settings: Settings, engine: Engine, **kwargs: Any) -> list[Any]:
        result = original(settings, engine, **kwargs)
        kwargs["stop"].set()  # as SIGTERM would, while the pass is in flight
        return result

    scheduler._run = run_then_signal
    scheduler.run_forever()
    assert len(run.calls) == 1


def test_an_unreachable_database_is_retried_not_fatal(
    make_settings: Callable[..., Settings],
) -> None:
    stop = threading.Event()
    time = FakeTime(stop, until=20 * timedelta(seconds=1))
    calls: list[Any] = []
    down = make_engine("postgresql+psycopg://kasparro@127.0.0.1:1/kasparro")
    try:
        scheduler = Scheduler(
            make_settings(schedule="1h"), down, run=lambda *a, **k: calls.append(a),
            clock=time.clock, wait=time.wait, stop=stop, mark_stale=lambda _e: 0, busy_retry=5,
        )  # fmt: skip
        scheduler.run_forever()
    finally:
        down.dispose()
    assert calls == []
    assert time.waits == [5, 5, 5, 5]  # retried every busy_retry seconds, no crash, no hot loop


def test_marks_stale_runs_at_start(make_scheduler: Callable[..., Any]) -> None:
    marked: list[Engine] = []
    scheduler, _time, _run = make_scheduler(
        until=0.5 * H, mark_stale=lambda e: marked.append(e) or 1
    )
    scheduler.run_forever()
    assert marked == [scheduler.engine]


def test_takes_the_scheduled_backup(make_scheduler: Callable[..., Any]) -> None:
    scheduler, _time, _run = make_scheduler(
        schedule="6h", until=1 * H, env={"backup_schedule": "1d"}
    )
    scheduler.run_forever()
    assert scheduler.backups == 1
    assert len(list_backups(Path(scheduler.settings.backup_dir))) == 1


def test_two_schedulers_run_each_pass_once(
    db_url: str, make_settings: Callable[..., Settings]
) -> None:
    """Replica B starts while replica A is mid-pass: B neither overlaps it nor repeats it."""
    engine_a, engine_b = make_engine(db_url), make_engine(db_url)
    a_running, a_release, b_tried = threading.Event(), threading.Event(), threading.Event()
    runs: list[str] = []
    settings = make_settings(schedule="1h")

    def run_a(_settings: Settings, engine: Engine, **_kwargs: Any) -> list[Any]:
        record_run(engine, datetime.now(UTC))
        runs.append("a")
        a_running.set()
        a_release.wait(10)
        return []

    def run_b(_settings: Settings, _engine: Engine, **_kwargs: Any) -> list[Any]:
        runs.append("b")
        return []

    waits_b: list[float] = []

    def wait_b(seconds: float) -> bool:
        waits_b.append(seconds)
        if len(waits_b) == 1:
            b_tried.set()
            thread_a.join(10)  # A's pass ends while B backs off
            return False
        return True

    a = Scheduler(settings, engine_a, run=run_a, mark_stale=lambda _e: 0)
    b = Scheduler(settings, engine_b, run=run_b, wait=wait_b, mark_stale=lambda _e: 0)
    thread_a = threading.Thread(target=a.run_forever)
    try:
        thread_a.start()
        assert a_running.wait(10)
        thread_b = threading.Thread(target=b.run_forever)
        thread_b.start()
        assert b_tried.wait(10)
        a.stop.set()
        a_release.set()
        thread_b.join(10)
    finally:
        a.stop.set()
        a_release.set()
        thread_a.join(10)
        engine_a.dispose()
        engine_b.dispose()
    assert runs == ["a"]
    assert waits_b[0] == b.busy_retry
    assert len(waits_b) == 2
    assert waits_b[1] > b.busy_retry


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_set_the_stop_event(sig: signal.Signals) -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stop = threading.Event()
    try:
        install_signal_handlers(stop)
        os.kill(os.getpid(), sig)
        assert stop.wait(5)
        with pytest.raises(SystemExit):
            os.kill(os.getpid(), sig)  # a second signal does not wait
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@pytest.mark.parametrize("ready", [True, False], ids=["schema-ready", "gave-up-or-stopped"])
def test_the_thread_starts_the_loop_only_once_its_gate_opens(
    make_scheduler: Callable[..., Any], ready: bool
) -> None:
    """``serve`` starts the scheduler behind the schema gate: no pass before the database is
    ready, none at all if the gate gives up or the service stops first."""
    scheduler, _time, run = make_scheduler(until=0.5 * H)
    waited = threading.Event()

    def gate() -> bool:
        waited.set()
        return ready

    scheduler.start_in_thread(after=gate).join(timeout=30)

    assert waited.is_set()
    assert (len(run.calls) > 0) is ready
