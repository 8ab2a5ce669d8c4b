"""Read-side repository functions for the API and metrics: keyword-only, SQLAlchemy expressions only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, literal, or_, select

from kasparro.db.models import (
    RAW_MODELS,
    Asset,
    AssetSource,
    CircuitBreaker,
    DataVersion,
    EtlRun,
    PriceHistory,
    Quarantine,
    SchemaDrift,
    UnifiedCrypto,
)

UNIFIED_SORT_COLUMNS: dict[str, Any] = {
    "id": UnifiedCrypto.id,
    "rank": UnifiedCrypto.rank,
    "symbol": UnifiedCrypto.symbol,
    "name": UnifiedCrypto.name,
    "price_usd": UnifiedCrypto.price_usd,
    "market_cap_usd": UnifiedCrypto.market_cap_usd,
    "volume_24h_usd": UnifiedCrypto.volume_24h_usd,
    "percent_change_24h": UnifiedCrypto.percent_change_24h,
    "ingested_at": UnifiedCrypto.ingested_at,
}

Row = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One page of rows, whether more follow, and how many match in total."""

    rows: list[Row]
    has_more: bool
    total: int


def read_data_state(*, conn: Connection) -> tuple[int, str]:
    """The data version, plus a cache token that also moves when runs start or finish and differs
    between databases (the version row's timestamp)."""
    runs = select(
        func.count(EtlRun.id), func.count(EtlRun.finished_at), func.coalesce(func.max(EtlRun.id), 0)
    )
    run_count, finished, last_run = conn.execute(runs).one()
    row = conn.execute(
        select(DataVersion.version, DataVersion.updated_at).where(DataVersion.id == 1)
    ).first()
    version, stamp = (int(row[0]), row[1].timestamp() if row[1] else 0.0) if row else (0, 0.0)
    return version, f"{version}.{stamp}.{run_count}.{finished}.{last_run}"


def _keyset(
    stmt: Select[Any], *, col: Any, id_col: Any, descending: bool, after: tuple[Any, int] | None
) -> Select[Any]:
    """Order by (col, id) with NULLs last and continue strictly after the ``after`` key."""
    primary = col.desc() if descending else col.asc()
    stmt = stmt.order_by(primary.nulls_last(), id_col.desc() if descending else id_col.asc())
    if after is None:
        return stmt
    value, last_id = after
    id_after = id_col < last_id if descending else id_col > last_id
    if value is None:
        return stmt.where(and_(col.is_(None), id_after))
    beyond = col < value if descending else col > value
    return stmt.where(or_(beyond, and_(col == value, id_after), col.is_(None)))


def _page(
    conn: Connection,
    stmt: Select[Any],
    *,
    where: Sequence[ColumnElement[bool]],
    count_from: Any,
    limit: int,
    offset: int,
) -> Page:
    rows = [dict(r) for r in conn.execute(stmt.limit(limit + 1).offset(offset or None)).mappings()]
    total = conn.execute(select(func.count()).select_from(count_from).where(*where)).scalar_one()
    return Page(rows=rows[:limit], has_more=len(rows) > limit, total=int(total))


def list_records(
    *,
    conn: Connection,
    symbol: str | None = None,
    source: str | None = None,
    asset_id: int | None = None,
    coin_id: str | None = None,
    min_price: float | None = None,
    max_price: float | None = None,
    min_market_cap: float | None = None,
    sort: str = "id",
    descending: bool = False,
    after: tuple[Any, int] | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """Unified records matching the filters, keyset-paginated over ``sort``."""
    u = UnifiedCrypto
    where: list[ColumnElement[bool]] = []
    if symbol is not None:
        where.append(func.lower(u.symbol) == symbol.lower())
    if source is not None:
        where.append(u.source == source)
    if asset_id is not None:
        where.append(u.asset_id == asset_id)
    if coin_id is not None:
        where.append(u.coin_id == coin_id)
    if min_price is not None:
        where.append(u.price_usd >= min_price)
    if max_price is not None:
        where.append(u.price_usd <= max_price)
    if min_market_cap is not None:
        where.append(u.market_cap_usd >= min_market_cap)
    stmt = _keyset(
        select(u.__table__).where(*where),
        col=UNIFIED_SORT_COLUMNS[sort],
        id_col=u.id,
        descending=descending,
        after=after,
    )
    return _page(conn, stmt, where=where, count_from=u.__table__, limit=limit, offset=offset)


def list_assets(
    *, conn: Connection, symbol: str | None, after_id: int | None, offset: int, limit: int
) -> Page:
    where = [func.lower(Asset.symbol) == symbol.lower()] if symbol is not None else []
    after = (after_id, after_id) if after_id is not None else None
    stmt = _keyset(
        select(Asset.__table__).where(*where),
        col=Asset.id,
        id_col=Asset.id,
        descending=False,
        after=after,
    )
    return _page(conn, stmt, where=where, count_from=Asset.__table__, limit=limit, offset=offset)


def asset_sources(*, conn: Connection, asset_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {asset_id: [] for asset_id in asset_ids}
    if not asset_ids:
        return found
    stmt = select(AssetSource.asset_id, AssetSource.source).where(
        AssetSource.asset_id.in_(asset_ids)
    )
    for asset_id, source in conn.execute(stmt.order_by(AssetSource.asset_id, AssetSource.source)):
        if source not in found[asset_id]:
            found[asset_id].append(source)
    return found


def get_asset(*, conn: Connection, asset_id: int) -> Row | None:
    row = conn.execute(select(Asset.__table__).where(Asset.id == asset_id)).mappings().first()
    return dict(row) if row is not None else None


def asset_records(*, conn: Connection, asset_id: int) -> list[Row]:
    stmt = (
        select(UnifiedCrypto.__table__)
        .where(UnifiedCrypto.asset_id == asset_id)
        .order_by(UnifiedCrypto.source)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def price_observations(
    *, conn: Connection, asset_id: int, start: datetime, end: datetime, source: str | None
) -> list[Row]:
    """Observations in ``[start, end)``, oldest first."""
    p = PriceHistory
    where = [p.asset_id == asset_id, p.observed_at >= start, p.observed_at < end]
    if source is not None:
        where.append(p.source == source)
    stmt = select(p.observed_at, p.price_usd, p.high_usd, p.low_usd, p.volume_24h_usd).where(*where)
    return [dict(r) for r in conn.execute(stmt.order_by(p.observed_at, p.id)).mappings()]


def list_runs(
    *,
    conn: Connection,
    source: str | None,
    status: str | None,
    after_id: int | None,
    offset: int,
    limit: int,
) -> Page:
    where: list[ColumnElement[bool]] = []
    if source is not None:
        where.append(EtlRun.source == source)
    if status is not None:
        where.append(EtlRun.status == status)
    after = (after_id, after_id) if after_id is not None else None
    stmt = _keyset(
        select(EtlRun.__table__).where(*where),
        col=EtlRun.id,
        id_col=EtlRun.id,
        descending=True,
        after=after,
    )
    return _page(conn, stmt, where=where, count_from=EtlRun.__table__, limit=limit, offset=offset)


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
) -> Page:
    where: list[ColumnElement[bool]] = []
    if source is not None:
        where.append(SchemaDrift.source == source)
    if run_id is not None:
        where.append(SchemaDrift.run_id == run_id)
    after = (after_id, after_id) if after_id is not None else None
    stmt = _keyset(
        select(SchemaDrift.__table__).where(*where),
        col=SchemaDrift.id,
        id_col=SchemaDrift.id,
        descending=True,
        after=after,
    )
    return _page(
        conn, stmt, where=where, count_from=SchemaDrift.__table__, limit=limit, offset=offset
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
    stmt = (
        select(EtlRun.source, func.max(EtlRun.finished_at))
        .where(EtlRun.status == "success")
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
