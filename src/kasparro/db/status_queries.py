"""Read-side repository functions for ETL status: runs, drift, statistics, health and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, literal, select

from kasparro.db.models import (
    RAW_MODELS,
    Asset,
    CircuitBreaker,
    EtlRun,
    PriceHistory,
    Quarantine,
    SchemaDrift,
    UnifiedCrypto,
)
from kasparro.db.queries import Page, keyset, page_of
from kasparro.db.queries import Row as Row  # re-exported for the routes

# a partial run quarantined some records but committed the rest: it counts as a success
SUCCESSFUL_STATUSES = ("success", "partial")


def _newest_first(
    conn: Connection,
    model: type[EtlRun] | type[SchemaDrift],
    where: list[ColumnElement[bool]],
    *,
    after_id: int | None,
    offset: int,
    limit: int,
    total: int | None,
) -> Page:
    """A page of a table's rows matching ``where``, newest (highest id) first, after ``after_id``."""
    after = (after_id, after_id) if after_id is not None else None
    stmt = keyset(
        select(model.__table__).where(*where),
        col=model.id,
        id_col=model.id,
        descending=True,
        after=after,
    )
    return page_of(
        conn, stmt, where=where, count_from=model.__table__, limit=limit, offset=offset, total=total
    )


def list_runs(
    *,
    conn: Connection,
    source: str | None,
    status: str | None,
    after_id: int | None,
    offset: int,
    limit: int,
    total: int | None = None,
) -> Page:
    where: list[ColumnElement[bool]] = []
    if source is not None:
        where.append(EtlRun.source == source)
    if status is not None:
        where.append(EtlRun.status == status)
    return _newest_first(
        conn, EtlRun, where, after_id=after_id, offset=offset, limit=limit, total=total
    )


def get_run(*, conn: Connection, run_id: int) -> Row | None:
    row = conn.execute(select(EtlRun.__table__).where(EtlRun.id == run_id)).mappings().first()
    return dict(row) if row is not None else None


def run_drift(*, conn: Connection, run_id: int) -> list[Row]:
    stmt = (
        select(SchemaDrift.__table__).where(SchemaDrift.run_id == run_id).order_by(SchemaDrift.id)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def run_quarantine_count(*, conn: Connection, run_id: int) -> int:
    stmt = select(func.count()).select_from(Quarantine).where(Quarantine.run_id == run_id)
    return int(conn.execute(stmt).scalar_one())


def run_observations(*, conn: Connection, run_id: int) -> dict[int, tuple[str, float | None]]:
    """Asset id -> (symbol, price) as seen by one run: its price history rows, then unified rows it wrote."""
    seen: dict[int, tuple[str, float | None]] = {}
    history = (
        select(PriceHistory.asset_id, Asset.symbol, PriceHistory.price_usd)
        .join(Asset, Asset.id == PriceHistory.asset_id)
        .where(PriceHistory.run_id == run_id)
        .order_by(PriceHistory.observed_at, PriceHistory.id)
    )
    for asset_id, symbol, price in conn.execute(history):
        seen[int(asset_id)] = (str(symbol), price)
    unified = select(UnifiedCrypto.asset_id, UnifiedCrypto.symbol, UnifiedCrypto.price_usd).where(
        UnifiedCrypto.run_id == run_id
    )
    for asset_id, symbol, price in conn.execute(unified):
        seen.setdefault(int(asset_id), (str(symbol), price))
    return seen


def list_drift(
    *,
    conn: Connection,
    source: str | None,
    run_id: int | None,
    after_id: int | None,
    offset: int,
    limit: int,
    total: int | None = None,
) -> Page:
    where: list[ColumnElement[bool]] = []
    if source is not None:
        where.append(SchemaDrift.source == source)
    if run_id is not None:
        where.append(SchemaDrift.run_id == run_id)
    return _newest_first(
        conn, SchemaDrift, where, after_id=after_id, offset=offset, limit=limit, total=total
    )


def counts_by_source(*, conn: Connection) -> dict[str, dict[str, int]]:
    """Per source: unified rows, assets covered, runs, drift events, quarantined and raw rows."""
    out: dict[str, dict[str, int]] = {}

    def put(metric: str, rows: Any) -> None:
        for source, count in rows:
            out.setdefault(str(source), {})[metric] = int(count)

    u = UnifiedCrypto
    put("unified_rows", conn.execute(select(u.source, func.count()).group_by(u.source)))
    put(
        "assets_covered",
        conn.execute(select(u.source, func.count(func.distinct(u.asset_id))).group_by(u.source)),
    )
    put("runs", conn.execute(select(EtlRun.source, func.count()).group_by(EtlRun.source)))
    put(
        "drift_events",
        conn.execute(select(SchemaDrift.source, func.count()).group_by(SchemaDrift.source)),
    )
    put(
        "quarantined",
        conn.execute(select(Quarantine.source, func.count()).group_by(Quarantine.source)),
    )
    for source, model in RAW_MODELS.items():
        raw = conn.execute(select(func.count()).select_from(model)).scalar_one()
        out.setdefault(source, {})["raw_rows"] = int(raw)
    return out


def count_assets(*, conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(Asset)).scalar_one())


def latest_runs(*, conn: Connection) -> dict[str, Row]:
    """Each source's newest run."""
    newest = select(func.max(EtlRun.id)).group_by(EtlRun.source).scalar_subquery()
    rows = conn.execute(select(EtlRun.__table__).where(EtlRun.id.in_(newest))).mappings()
    return {str(r["source"]): dict(r) for r in rows}


def last_successes(*, conn: Connection) -> dict[str, datetime]:
    """Each source's end of its newest successful (or partial) run."""
    stmt = (
        select(EtlRun.source, func.max(EtlRun.finished_at))
        .where(EtlRun.status.in_(SUCCESSFUL_STATUSES))
        .group_by(EtlRun.source)
    )
    return {
        str(source): finished for source, finished in conn.execute(stmt) if finished is not None
    }


def recent_statuses(*, conn: Connection, source: str, limit: int) -> list[str]:
    """The statuses of a source's last ``limit`` finished runs, newest first."""
    stmt = (
        select(EtlRun.status)
        .where(EtlRun.source == source, EtlRun.status != "running")
        .order_by(EtlRun.id.desc())
        .limit(limit)
    )
    return [str(s) for s in conn.execute(stmt).scalars()]


def breakers(*, conn: Connection) -> dict[str, Row]:
    return {
        str(r["source"]): dict(r) for r in conn.execute(select(CircuitBreaker.__table__)).mappings()
    }


def run_totals(*, conn: Connection) -> list[Row]:
    """Per (source, status): runs and the summed record counters, for metrics."""
    r = EtlRun
    stmt = select(
        r.source,
        r.status,
        func.count().label("runs"),
        *(
            func.coalesce(func.sum(c), 0).label(c.key)
            for c in (r.fetched, r.loaded, r.unchanged, r.quarantined)
        ),
    ).group_by(r.source, r.status)
    return [dict(row) for row in conn.execute(stmt).mappings()]


def duration_histogram(
    *, conn: Connection, bounds: Sequence[float]
) -> dict[str, tuple[list[int], float, int]]:
    """Per source: cumulative counts of finished runs at or under each bound, the sum and the count."""
    d = EtlRun.duration_seconds
    buckets = [func.sum(case((d <= bound, 1), else_=0)) for bound in bounds]
    stmt = select(EtlRun.source, func.coalesce(func.sum(d), literal(0.0)), func.count(d), *buckets)
    stmt = stmt.where(d.is_not(None)).group_by(EtlRun.source)
    return {
        str(row[0]): ([int(v or 0) for v in row[3:]], float(row[1]), int(row[2]))
        for row in conn.execute(stmt)
    }
