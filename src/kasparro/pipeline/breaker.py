"""A per-source circuit breaker whose state lives in the ``circuit_breaker`` table."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from kasparro.db.models import Base, UTCDateTime
from kasparro.db.repository import bump_data_version
from kasparro.observability.logging import log_context

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_table = Base.metadata.tables["circuit_breaker"]


def _utc(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: None) -> None: ...
def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class CircuitBreaker:
    """Skip a source after ``threshold`` consecutive failed runs, for ``cooldown`` seconds.

    After the cool-down one probe run is let through (half-open): its success closes the
    breaker, its failure opens it again for a fresh cool-down. Every transition is a single
    conditional statement, so several processes sharing the database agree on the state.
    """

    def __init__(self, engine: Engine, *, threshold: int, cooldown: float) -> None:
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.engine = engine
        self.threshold = threshold
        self.cooldown = timedelta(seconds=cooldown)

    def allow(self, source: str, now: datetime | None = None) -> bool:
        """Whether ``source`` may run now; moving an expired open breaker to half-open."""
        now = _utc(now)
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(_table).where(_table.c.source == source)).mappings().first()
            )
        if row is None or row["state"] == CLOSED:
            return True
        updated_at = _aware(row["updated_at"])
        if row["state"] == OPEN:
            opened_at = _aware(row["opened_at"] or row["updated_at"])
            if now < opened_at + self.cooldown:
                return False
        elif now < updated_at + self.cooldown:
            # half-open: a probe is already out; another is allowed only if that one vanished
            return False
        # compare-and-set: of several processes racing for the probe, exactly one wins
        with self.engine.begin() as conn:
            won = conn.execute(
                sa.update(_table)
                .where(
                    _table.c.source == source,
                    _table.c.state == row["state"],
                    _table.c.updated_at == row["updated_at"],
                )
                .values(state=HALF_OPEN, updated_at=now)
            ).rowcount
            if won:
                bump_data_version(conn=conn)  # /stats and /health show breaker states
        if won:
            with log_context(source=source):  # the probe run has not started: no run_id yet
                log.info("circuit breaker of %s is half-open: allowing one probe run", source)
        return bool(won)

    def record(
        self,
        source: str,
        *,
        success: bool,
        now: datetime | None = None,
        run_id: int | None = None,
    ) -> None:
        """Record a finished run (``run_id``, when there is one): success closes the breaker,
        failure counts towards opening it. A breaker opening is logged with the source and the
        run that opened it."""
        now = _utc(now)
        with self.engine.begin() as conn:
            bump_data_version(conn=conn)  # /stats and /health show breaker states
            if success:
                self._upsert(
                    conn,
                    {
                        "source": source,
                        "state": CLOSED,
                        "consecutive_failures": 0,
                        "opened_at": None,
                        "updated_at": now,
                    },
                    {
                        "state": CLOSED,
                        "consecutive_failures": 0,
                        "opened_at": None,
                        "updated_at": now,
                    },
                )
                return
            failures = _table.c.consecutive_failures + 1
            reopen = sa.or_(
                _table.c.state == HALF_OPEN,
                sa.and_(_table.c.state == CLOSED, failures >= self.threshold),
            )
            now_value = sa.literal(now, type_=UTCDateTime())
            self._upsert(
                conn,
                {
                    "source": source,
                    "state": OPEN if self.threshold <= 1 else CLOSED,
                    "consecutive_failures": 1,
                    "opened_at": now if self.threshold <= 1 else None,
                    "updated_at": now,
                },
                {
                    "consecutive_failures": failures,
                    "state": sa.case((reopen, OPEN), else_=_table.c.state),
                    "opened_at": sa.case((reopen, now_value), else_=_table.c.opened_at),
                    "updated_at": now_value,
                },
            )
            state = conn.execute(
                sa.select(_table.c.state).where(_table.c.source == source)
            ).scalar_one()
        if state == OPEN:
            run = {} if run_id is None else {"run_id": run_id}
            with log_context(source=source, **run):
                log.warning("circuit breaker of %s is open", source)

    def states(self, now: datetime | None = None) -> dict[str, dict[str, Any]]:
        """Every source's breaker: state, consecutive failures, when it opened and until when."""
        now = _utc(now)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_table).order_by(_table.c.source)).mappings().all()
        result: dict[str, dict[str, Any]] = {}
        for row in rows:
            opened_at = _aware(row["opened_at"])
            until = (
                opened_at + self.cooldown
                if row["state"] == OPEN and opened_at is not None
                else None
            )
            result[row["source"]] = {
                "state": row["state"],
                "consecutive_failures": row["consecutive_failures"],
                "opened_at": opened_at,
                "updated_at": _aware(row["updated_at"]),
                "retry_at": until,
                "allowing": row["state"] != OPEN or (until is not None and now >= until),
            }
        return result

    def _upsert(
        self, conn: sa.Connection, values: dict[str, Any], on_conflict: dict[str, Any]
    ) -> None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(_table).values(**values)
        conn.execute(stmt.on_conflict_do_update(index_elements=[_table.c.source], set_=on_conflict))
