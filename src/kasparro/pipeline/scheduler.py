"""The scheduler: a thin, signal-aware loop over the pure functions of ``schedule``.

One pass at a time, never a burst of missed runs, and across replicas sharing a database one
pass per due time: a pass is claimed with a non-blocking lock, and the due time is recomputed
from ``etl_run`` (which every replica sees) before the claimed pass starts.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from kasparro.config import Settings
from kasparro.db.models import Base
from kasparro.pipeline.locks import source_lock
from kasparro.pipeline.schedule import Schedule, parse_schedule

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Wait = Callable[[float], bool]
"""Wait up to N seconds; return True when a stop was requested."""
RunPass = Callable[..., Any]
BackupFn = Callable[[Settings, Engine, Path], Path]

CLAIM_LOCK = "scheduler-pass"
BACKUP_LOCK = "scheduler-backup"
_etl_run = Base.metadata.tables["etl_run"]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def last_scheduled_start(engine: Engine) -> datetime | None:
    """When the newest scheduled run (of any source, by any replica) started."""
    query = sa.select(sa.func.max(_etl_run.c.started_at)).where(_etl_run.c.trigger == "schedule")
    with engine.connect() as conn:
        value = conn.execute(query).scalar_one_or_none()
    return _utc(value) if isinstance(value, datetime) else None


class Scheduler:
    """Runs ``run`` (``run_pass`` by default) at start and then on ``settings.schedule``.

    ``clock`` and ``wait`` are injectable so tests can freeze time; ``stop`` is the event a
    signal handler (or ``serve``'s shutdown) sets to end the loop after the pass in flight.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        run: RunPass | None = None,
        backup: BackupFn | None = None,
        mark_stale: Callable[[Engine], int] | None = None,
        clock: Clock | None = None,
        wait: Wait | None = None,
        stop: threading.Event | None = None,
        run_on_start: bool = True,
        max_nap: float = 60.0,
        busy_retry: float = 5.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.stop = stop if stop is not None else threading.Event()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.wait: Wait = wait or self.stop.wait
        self._run = run
        self._backup = backup
        self._mark_stale = mark_stale
        self.schedule: Schedule = parse_schedule(settings.schedule)
        self.backup_schedule = (
            parse_schedule(settings.backup_schedule) if settings.backup_schedule else None
        )
        self.run_on_start = run_on_start
        self.max_nap = max_nap
        self.busy_retry = busy_retry
        self.passes = 0
        self.backups = 0
        self._last_attempt: datetime | None = None
        self._last_backup_attempt: datetime | None = None

    # the loop
    def run_forever(self) -> None:
        """Loop until ``stop`` is set; the pass in flight finishes first."""
        log.info("scheduler started: schedule %r", self.settings.schedule)
        self._mark_stale_runs()
        first = self.run_on_start
        while not self.stop.is_set():
            now = self.clock()
            pass_due = now if first else self.next_pass_due(now)
            backup_due = self.next_backup_due(now)
            if pass_due <= now:
                try:
                    claimed = self._run_pass(pass_due, recheck=not first)
                except SQLAlchemyError as exc:
                    log.error("database unavailable, pass not started: %s", exc.__class__.__name__)
                    claimed = False  # try again after busy_retry
                first = False
                if not claimed and self.wait(self.busy_retry):
                    break
                continue
            if backup_due is not None and backup_due <= now:
                self._take_backup(now)
                continue
            nearest = min(pass_due, backup_due) if backup_due is not None else pass_due
            if self.wait(min((nearest - now).total_seconds(), self.max_nap)):
                break
        log.info("scheduler stopped after %d pass(es)", self.passes)

    def start_in_thread(self, *, after: Callable[[], bool] | None = None) -> threading.Thread:
        """Run the loop in a background thread (for ``serve``); set ``stop`` and join it to end.
        With ``after`` (a schema gate's ``wait``), the loop starts once that returns True."""
        thread = threading.Thread(
            target=self._guarded_loop, args=(after,), name="kasparro-scheduler", daemon=True
        )
        thread.start()
        return thread

    def _guarded_loop(self, after: Callable[[], bool] | None = None) -> None:
        if after is not None and not after():
            return
        try:
            self.run_forever()
        except Exception:
            log.exception("scheduler loop crashed")

    # due times
    def next_pass_due(self, now: datetime) -> datetime:
        """The next due time, anchored on the newest scheduled start this or any replica made."""
        last = self._last_attempt
        try:
            seen = last_scheduled_start(self.engine)
        except SQLAlchemyError as exc:
            log.warning("could not read the last scheduled run: %s", exc.__class__.__name__)
            seen = None
        if seen is not None and (last is None or seen > last):
            last = seen
        return self.schedule.next_after(now, last)

    def next_backup_due(self, now: datetime) -> datetime | None:
        if self.backup_schedule is None:
            return None
        last = self._last_backup_attempt
        newest = newest_backup_time(self.settings.backup_dir)
        if newest is not None and (last is None or newest > last):
            last = newest
        return self.backup_schedule.next_after(now, last)

    # actions
    def _run_pass(self, due: datetime, *, recheck: bool) -> bool:
        """Run one pass if no replica is running one and none already ran it; False if not claimed."""
        with source_lock(self.engine, CLAIM_LOCK) as held:
            if not held:
                log.info("another scheduler is running a pass; not starting one")
                return False
            now = self.clock()
            if recheck and self.next_pass_due(now) > now:
                log.info("the pass due at %s already ran elsewhere", due.isoformat())
                return True
            self._last_attempt = now
            try:
                results = self._runner()(
                    self.settings, self.engine, trigger="schedule", stop=self.stop, due_at=due
                )
            except Exception:
                log.exception("scheduled pass failed")
                return True
            self.passes += 1
            log.info(
                "scheduled pass finished: %d run(s)",
                len(results) if isinstance(results, list) else 0,
            )
            return True

    def _take_backup(self, now: datetime) -> None:
        self._last_backup_attempt = now
        try:
            with source_lock(self.engine, BACKUP_LOCK) as held:
                if not held:
                    return
                path = self._backuper()(self.settings, self.engine, self.settings.backup_dir)
        except Exception:
            log.exception("scheduled backup failed")
            return
        self.backups += 1
        log.info("scheduled backup written to %s", path)

    def _mark_stale_runs(self) -> None:
        try:
            if self._mark_stale is None:
                from kasparro.pipeline.runner import mark_stale_runs_interrupted

                self._mark_stale = mark_stale_runs_interrupted
            marked = self._mark_stale(self.engine)
        except Exception:
            log.exception("could not mark stale runs interrupted")
            return
        if marked:
            log.warning("marked %d unfinished run(s) from an earlier process interrupted", marked)

    def _runner(self) -> RunPass:
        if self._run is None:
            from kasparro.pipeline.runner import run_pass

            self._run = run_pass
        return self._run

    def _backuper(self) -> BackupFn:
        if self._backup is None:
            from kasparro.pipeline.backup import backup

            self._backup = backup
        return self._backup


def newest_backup_time(directory: Path) -> datetime | None:
    """The modification time of the newest backup file in ``directory``."""
    from kasparro.pipeline.backup import list_backups

    backups = list_backups(directory)
    if not backups:
        return None
    return datetime.fromtimestamp(max(p.stat().st_mtime for p in backups), UTC)


def install_signal_handlers(
    stop: threading.Event, *, action: str = "finishing the batch in flight, then stopping"
) -> None:
    """SIGTERM / SIGINT set ``stop`` (the pass in flight finishes); a second one exits at once."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second %s: exiting without waiting", signal.Signals(signum).name)
            raise SystemExit(128 + signum)
        log.info("%s received: %s", signal.Signals(signum).name, action)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
