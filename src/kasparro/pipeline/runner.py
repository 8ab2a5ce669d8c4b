"""One ETL pass: every enabled source, each isolated from the others, each with its own run."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from kasparro.config import Settings
from kasparro.db.models import EtlRun, utcnow
from kasparro.db.runs import RunCounts, mark_stale_runs_interrupted
from kasparro.ingestion.base import RunResult
from kasparro.ingestion.registry import SOURCES
from kasparro.observability.logging import get_logger, log_context
from kasparro.pipeline.breaker import CircuitBreaker
from kasparro.pipeline.locks import source_lock

__all__ = [
    "NOT_STARTED",
    "RunResult",
    "mark_stale_runs_interrupted",
    "replay_sources",
    "run_pass",
    "run_source",
]

log = get_logger(__name__)
Progress = Callable[[str, RunCounts], None]


def _already_ran(engine: Engine, source: str, due_at: datetime) -> bool:
    """Another replica already started this scheduled pass of ``source``."""
    with engine.connect() as conn:
        found = conn.execute(
            select(EtlRun.id)
            .where(
                EtlRun.source == source, EtlRun.started_at >= due_at, EtlRun.trigger == "schedule"
            )
            .limit(1)
        ).first()
    return found is not None


#: How long a run waits for its source's lock before skipping. A killed process's PostgreSQL
#: session (and its advisory lock) can outlive it by a moment; a run held elsewhere stays held.
LOCK_PATIENCE = 3.0


@contextlib.contextmanager
def _patient_lock(engine: Engine, source: str, stop: threading.Event | None) -> Iterator[bool]:
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        with source_lock(engine, source) as acquired:
            if acquired or time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                yield acquired
                return
        (stop or threading.Event()).wait(0.2)


#: The error of a source a stop reached before its run started.
NOT_STARTED = "shutting down: not started"


def _stopping(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _not_started(source: str) -> RunResult:
    # no etl_run row: an "interrupted" row for a run that never began would count as a scheduled
    # run of this pass (``_already_ran`` would then skip it on the replica that takes over) and
    # would read as a run cut short when nothing was fetched or written
    log.info("shutdown requested; source not started")
    return RunResult(None, source, "skipped", error=NOT_STARTED)


def run_source(
    settings: Settings,
    engine: Engine,
    source: str,
    *,
    trigger: str = "manual",
    stop: threading.Event | None = None,
    due_at: datetime | None = None,
    progress: Progress | None = None,
    breaker: CircuitBreaker | None = None,
    **source_kwargs: Any,
) -> RunResult:
    """Run one source under its lock and circuit breaker; never raises for a source failure.

    Once ``stop`` is set no run starts: the source is reported ``skipped`` (error
    ``NOT_STARTED``) and gets no ``etl_run`` row, as it never fetched or wrote anything.
    """
    with log_context(source=source):
        try:
            if _stopping(stop):
                return _not_started(source)
            with _patient_lock(engine, source, stop) as acquired:
                # checked again under the lock: a stop may come while waiting for it
                if _stopping(stop):
                    return _not_started(source)
                if not acquired:
                    log.info("source already running elsewhere; skipped")
                    return RunResult(
                        None, source, "skipped", error="another run of this source holds the lock"
                    )
                if due_at is not None and _already_ran(engine, source, due_at):
                    log.info("this scheduled pass already ran on another replica; skipped")
                    return RunResult(
                        None, source, "skipped", error="pass already run by another replica"
                    )
                # asked last, just before the run: a half-open breaker hands out its one probe
                # here, and a source skipped for any reason above must not take it and leave
                if breaker is not None and not breaker.allow(source, utcnow()):
                    log.warning("circuit open; source skipped until its cool-down ends")
                    return RunResult(None, source, "skipped", error="circuit breaker open")
                ingestion = SOURCES[source](
                    settings, engine, stop=stop, progress=progress, **source_kwargs
                )
                result = ingestion.run(trigger=trigger)
            if breaker is not None and result.status != "interrupted":
                breaker.record(
                    source,
                    success=result.status in ("success", "partial"),
                    now=utcnow(),
                    run_id=result.run_id,  # the line saying it opened names the run that did it
                )
            return result
        except SQLAlchemyError as exc:
            message = f"database error: {str(exc).splitlines()[0][:500]}"
            log.error("source could not run", extra={"error": message})
            return RunResult(None, source, "failed", error=message)


def run_pass(
    settings: Settings,
    engine: Engine,
    *,
    sources: Sequence[str] | None = None,
    trigger: str = "manual",
    stop: threading.Event | None = None,
    due_at: datetime | None = None,
    progress: Progress | None = None,
) -> list[RunResult]:
    """Run every enabled source (concurrently unless ``settings.sequential``); one failing source
    never stops another. Results come back in the order the sources were given."""
    names = list(sources or settings.sources)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s): {unknown}")
    try:
        mark_stale_runs_interrupted(engine)
    except SQLAlchemyError as exc:
        log.error("could not check for interrupted runs", extra={"error": str(exc).splitlines()[0]})
    breaker = CircuitBreaker(
        engine, threshold=settings.breaker_failure_threshold, cooldown=settings.breaker_cooldown
    )

    def one(name: str) -> RunResult:
        return run_source(
            settings,
            engine,
            name,
            trigger=trigger,
            stop=stop,
            due_at=due_at,
            progress=progress,
            breaker=breaker,
        )

    if settings.sequential or len(names) == 1:
        return [one(name) for name in names]
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="kasparro-source") as pool:
        return list(pool.map(one, names))


def replay_sources(
    settings: Settings, engine: Engine, *, sources: Sequence[str] | None = None
) -> list[RunResult]:
    """Rebuild unified rows and history from stored raw payloads, one source at a time, offline."""
    results = []
    for name in sources or settings.sources:
        with source_lock(engine, name) as acquired:
            if not acquired:
                results.append(
                    RunResult(
                        None, name, "skipped", error="another run of this source holds the lock"
                    )
                )
                continue
            ingestion = SOURCES[name](settings, engine)
            try:
                results.append(ingestion.replay())
            finally:
                ingestion.close()
    return results
