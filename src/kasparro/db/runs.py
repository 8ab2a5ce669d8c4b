"""Run tracking: open a run, move its counters with each batch, close it with a final status."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from kasparro.db.models import EtlRun, Quarantine, SchemaDrift, utcnow
from kasparro.db.repository import bump_data_version

FINAL_STATUSES = ("success", "partial", "failed", "interrupted")
HOSTNAME = socket.gethostname()
STALE_HEARTBEAT = timedelta(minutes=15)


@dataclass
class RunCounts:
    fetched: int = 0
    loaded: int = 0
    unchanged: int = 0
    quarantined: int = 0
    drift_events: int = 0

    def add(self, other: RunCounts) -> None:
        self.fetched += other.fetched
        self.loaded += other.loaded
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined
        self.drift_events += other.drift_events

    def as_dict(self) -> dict[str, int]:
        return {
            "fetched": self.fetched,
            "loaded": self.loaded,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "drift_events": self.drift_events,
        }


@dataclass
class QuarantinedRecord:
    coin_id: str | None
    record: Any
    reason: str
    errors: list[dict[str, Any]] = field(default_factory=list)


def start_run(engine: Engine, *, source: str, trigger: str) -> int:
    """Insert a ``running`` run in its own transaction and return its id."""
    now = utcnow()
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(EtlRun)
            .values(
                source=source,
                status="running",
                trigger=trigger,
                started_at=now,
                heartbeat_at=now,
                hostname=HOSTNAME,
                pid=os.getpid(),
            )
            .returning(EtlRun.id)
        ).scalar_one()
        bump_data_version(conn=conn)  # the API serves run history and status
    return int(run_id)


def add_batch_counts(*, conn: Connection, run_id: int, counts: RunCounts) -> None:
    """Move the run's counters inside the batch's own transaction, so they match the data."""
    conn.execute(
        update(EtlRun)
        .where(EtlRun.id == run_id)
        .values(
            fetched=EtlRun.fetched + counts.fetched,
            loaded=EtlRun.loaded + counts.loaded,
            unchanged=EtlRun.unchanged + counts.unchanged,
            quarantined=EtlRun.quarantined + counts.quarantined,
            drift_events=EtlRun.drift_events + counts.drift_events,
            heartbeat_at=utcnow(),
        )
    )


def finish_run(
    engine: Engine,
    *,
    run_id: int,
    status: str,
    error: str | None,
    requests: int = 0,
    retries: int = 0,
) -> None:
    """Close a run with a final status, on a fresh connection (the failing one may be broken)."""
    now = utcnow()
    with engine.begin() as conn:
        started = conn.execute(select(EtlRun.started_at).where(EtlRun.id == run_id)).scalar_one()
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(
                status=status,
                finished_at=now,
                heartbeat_at=now,
                duration_seconds=(now - started).total_seconds(),
                error=error[:4000] if error else None,
                requests=requests,
                retries=retries,
            )
        )
        bump_data_version(conn=conn)


def without_nul(value: Any) -> Any:
    """A copy with NUL characters replaced: PostgreSQL text and JSON cannot hold them."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def record_quarantine(
    *, conn: Connection, source: str, run_id: int | None, records: Sequence[QuarantinedRecord]
) -> None:
    if records:
        conn.execute(
            insert(Quarantine),
            [
                {
                    "source": source,
                    "run_id": run_id,
                    "coin_id": without_nul(r.coin_id),
                    "record": without_nul(r.record),
                    "errors": without_nul(r.errors),
                    "reason": without_nul(r.reason),
                    "created_at": utcnow(),
                }
                for r in records
            ],
        )


def record_drift(*, conn: Connection, source: str, run_id: int, events: Sequence[Any]) -> None:
    if events:
        conn.execute(
            insert(SchemaDrift),
            [
                {
                    "source": source,
                    "run_id": run_id,
                    "field": without_nul(e.field[:255]),
                    "kind": e.kind,
                    "expected": e.expected,
                    "observed": e.observed,
                    "sample_value": without_nul(e.sample_value),
                    "detected_at": utcnow(),
                }
                for e in events
            ],
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Runs of this process whose final status could not be written (the database was away); they
# are closed the next time this process checks for stale runs. Guarded by _UNFINISHED_LOCK.
_UNFINISHED: dict[int, dict[str, Any]] = {}
_UNFINISHED_LOCK = threading.Lock()


def remember_unfinished(run_id: int, **final: Any) -> None:
    """Keep a run's final status in memory until the database accepts it."""
    with _UNFINISHED_LOCK:
        _UNFINISHED[run_id] = final


def _close_remembered(engine: Engine) -> None:
    with _UNFINISHED_LOCK:
        pending = dict(_UNFINISHED)
    for run_id, final in pending.items():
        note = "final status recorded late: the database was unavailable when the run ended"
        error = f"{final['error']} ({note})" if final.get("error") else note
        finish_run(
            engine,
            run_id=run_id,
            status=final["status"],
            error=error,
            requests=final.get("requests", 0),
            retries=final.get("retries", 0),
        )
        with _UNFINISHED_LOCK:
            _UNFINISHED.pop(run_id, None)


def mark_stale_runs_interrupted(engine: Engine, *, now: datetime | None = None) -> int:
    """Close runs left ``running``: those of this process whose end could not be recorded, and
    those of dead processes (on this host by pid, elsewhere by heartbeat)."""
    _close_remembered(engine)
    now = now or utcnow()
    with engine.begin() as conn:
        rows = conn.execute(
            select(EtlRun.id, EtlRun.hostname, EtlRun.pid, EtlRun.heartbeat_at).where(
                EtlRun.status == "running"
            )
        ).all()
        dead = []
        for run_id, hostname, pid, heartbeat in rows:
            if hostname == HOSTNAME and pid is not None:
                if pid != os.getpid() and not _pid_alive(pid):
                    dead.append(run_id)
            elif heartbeat is None or now - heartbeat > STALE_HEARTBEAT:
                dead.append(run_id)
        if dead:
            conn.execute(
                update(EtlRun)
                .where(EtlRun.id.in_(dead), EtlRun.status == "running")
                .values(
                    status="interrupted",
                    finished_at=now,
                    error="process ended before the run finished",
                )
            )
            bump_data_version(conn=conn)
    return len(dead)
