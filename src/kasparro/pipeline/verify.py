"""Integrity checks for a live or restored database, behind ``kasparro db verify``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from kasparro.db.engine import is_sqlite
from kasparro.db.models import RAW_MODELS, Base

API_SOURCES = ("coinpaprika", "coingecko")
_t = Base.metadata.tables


@dataclass
class VerifyReport:
    """Row counts per table plus the named problems found; ``ok`` when there are none."""

    counts: dict[str, int] = field(default_factory=dict)
    checks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [f"{name}: {problem}" for name, found in self.checks.items() for problem in found]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine) -> VerifyReport:
    """Run every check; each records its problems under its own name."""
    report = VerifyReport()
    with engine.connect() as conn:
        for name, check in _CHECKS.items():
            try:
                report.checks[name] = check(conn, report)
            except SQLAlchemyError as exc:
                conn.rollback()
                report.checks[name] = [
                    f"could not run: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
                ]
    return report


def _row_counts(conn: Connection, report: VerifyReport) -> list[str]:
    problems = []
    for table in Base.metadata.sorted_tables:
        try:
            report.counts[table.name] = int(
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
        except SQLAlchemyError:
            conn.rollback()
            problems.append(f"table {table.name} is missing or unreadable")
    return problems


def _unified_traces_to_raw(conn: Connection, _report: VerifyReport) -> list[str]:
    unified = _t["unified_crypto"]
    problems = []
    for source, model in RAW_MODELS.items():
        raw = _t[model.__tablename__]  # type: ignore[attr-defined]
        traced = sa.exists().where(
            raw.c.coin_id == unified.c.coin_id, raw.c.payload_hash == unified.c.payload_hash
        )
        orphans = conn.execute(
            sa.select(sa.func.count())
            .select_from(unified)
            .where(unified.c.source == source, ~traced)
        ).scalar_one()
        if orphans:
            problems.append(f"{orphans} unified {source} row(s) have no raw payload in {raw.name}")
    unknown = conn.execute(
        sa.select(sa.func.count())
        .select_from(unified)
        .where(unified.c.source.not_in(list(RAW_MODELS)))
    ).scalar_one()
    if unknown:
        problems.append(f"{unknown} unified row(s) come from an unknown source")
    return problems


def _no_duplicate_history(conn: Connection, _report: VerifyReport) -> list[str]:
    history = _t["price_history"]
    keys = (history.c.asset_id, history.c.source, history.c.observed_at)
    duplicates = sa.select(*keys).group_by(*keys).having(sa.func.count() > 1).subquery()
    found = conn.execute(sa.select(sa.func.count()).select_from(duplicates)).scalar_one()
    return [f"{found} history point(s) are stored more than once"] if found else []


def _checkpoints_behind_data(conn: Connection, _report: VerifyReport) -> list[str]:
    """A checkpoint moves in the same transaction as the data it covers and the counters of the
    run moving it, so: its run exists and recorded the records it moved past; an API checkpoint
    is no later than the newest ``last_updated`` stored; a CSV one is a readable byte offset."""
    checkpoint, run, unified = _t["etl_checkpoint"], _t["etl_run"], _t["unified_crypto"]
    problems = []
    rows = conn.execute(
        sa.select(
            checkpoint.c.source,
            checkpoint.c.run_id,
            checkpoint.c.last_value,
            checkpoint.c.state,
            run.c.id,
            run.c.fetched + run.c.loaded + run.c.unchanged + run.c.quarantined,
        ).outerjoin(run, run.c.id == checkpoint.c.run_id)
    ).all()
    for source, run_id, last_value, state, found_run, handled in rows:
        if run_id is not None and found_run is None:
            problems.append(f"checkpoint of {source} points at run {run_id}, which does not exist")
        elif found_run is not None and not handled:
            problems.append(
                f"checkpoint of {source} was moved by run {run_id}, which recorded no records"
            )
        if source == "csv":
            problems.extend(_csv_position(last_value, state))
        if source not in API_SOURCES or not last_value:
            continue
        position = _parse_time(last_value)
        if position is None:
            problems.append(f"checkpoint of {source} has an unreadable position {last_value!r}")
            continue
        newest_time = _newest(conn, unified.c.source_updated_at, unified.c.source, source)
        if newest_time is None or position > newest_time:
            # the unified row keeps only the latest record, which may carry no last_updated (or
            # an older one) where an earlier record moved the checkpoint; history keeps them all
            history = _t["price_history"]
            newest_time = _newest(conn, history.c.observed_at, history.c.source, source)
        if newest_time is None or position > newest_time:
            problems.append(
                f"checkpoint of {source} is at {position.isoformat()}, ahead of its newest data "
                f"({newest_time.isoformat() if newest_time else 'none'})"
            )
    return problems


def _csv_position(last_value: str | None, state: object) -> list[str]:
    """The CSV checkpoint is a byte offset into one file; ``last_value`` (``name@offset``) and
    the state's ``offset`` are written together, so they agree."""
    offset = state.get("offset") if isinstance(state, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return [f"checkpoint of csv has an unreadable byte offset {offset!r}"]
    if not (last_value or "").endswith(f"@{offset}"):
        return [f"checkpoint of csv is at {last_value!r}, but its state says byte {offset}"]
    return []


def _sqlite_integrity(conn: Connection, _report: VerifyReport) -> list[str]:
    if not is_sqlite(conn.engine):
        return []
    try:
        result = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA integrity_check").all()]
    except SQLAlchemyError as exc:  # damage bad enough that the check cannot walk the file
        conn.rollback()
        return [f"integrity_check: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"]
    return [] if result == ["ok"] else [f"integrity_check: {line}" for line in result[:10]]


def _schema_at_head(conn: Connection, _report: VerifyReport) -> list[str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from kasparro.db.engine import alembic_config

    current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return (
        []
        if current == head
        else [f"schema at revision {current}, expected {head} (run kasparro db upgrade)"]
    )


def _newest(
    conn: Connection,
    column: sa.ColumnElement[Any],
    source_column: sa.ColumnElement[Any],
    source: str,
) -> datetime | None:
    newest = conn.execute(sa.select(sa.func.max(column)).where(source_column == source))
    return _parse_time(newest.scalar_one_or_none())


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_CHECKS = {
    "row counts": _row_counts,
    "schema version": _schema_at_head,
    "unified rows trace to raw payloads": _unified_traces_to_raw,
    "no duplicate history points": _no_duplicate_history,
    "no checkpoint ahead of its data": _checkpoints_behind_data,
    "sqlite integrity": _sqlite_integrity,
}
