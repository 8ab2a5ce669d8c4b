"""Write-side repository functions: keyword-only, batched, dialect-aware ``INSERT … ON CONFLICT``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kasparro.db.bulk import BulkWriter
from kasparro.db.models import DataVersion, EtlCheckpoint, PriceHistory, UnifiedCrypto, utcnow

_UNIFIED_UPDATE_COLUMNS = (
    "coin_id", "symbol", "name", "rank", "price_usd", "market_cap_usd", "volume_24h_usd",
    "circulating_supply", "total_supply", "max_supply", "percent_change_24h",
    "source_updated_at", "ingested_at", "run_id", "payload_hash",
)  # fmt: skip


def _insert(conn: Connection, table: Any) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def insert_ignoring_conflicts(
    *, conn: Connection, table: Any, rows: Sequence[dict[str, Any]], conflict: Sequence[str]
) -> None:
    """Insert rows, silently skipping those whose ``conflict`` key already exists."""
    if rows:
        conn.execute(
            _insert(conn, table).on_conflict_do_nothing(index_elements=list(conflict)), list(rows)
        )


def existing_hashes(*, conn: Connection, table: Table, keys: Sequence[tuple[str, str]]) -> set[str]:
    """Which of these (coin id, payload hash) keys the raw table already holds: their hashes."""
    found = BulkWriter(conn).select_pairs(table.name, ("coin_id", "payload_hash"), keys)
    return {digest for (_, digest) in found}


def upsert_unified(*, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert latest records per ``(asset_id, source)``; an older observation never overwrites a newer one."""
    if not rows:
        return
    table = UnifiedCrypto.__table__
    stmt = _insert(conn, table)
    current = table.c.source_updated_at
    incoming = stmt.excluded.source_updated_at
    stmt = stmt.on_conflict_do_update(
        index_elements=["asset_id", "source"],
        set_={name: stmt.excluded[name] for name in _UNIFIED_UPDATE_COLUMNS},
        where=(current.is_(None) | incoming.is_(None) | (incoming >= current)),
    )
    conn.execute(stmt, list(rows))


def insert_history(*, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add observations; one already stored for ``(asset_id, source, observed_at)`` is kept as is."""
    insert_ignoring_conflicts(
        conn=conn,
        table=PriceHistory.__table__,
        rows=rows,
        conflict=("asset_id", "source", "observed_at"),
    )


def bump_data_version(*, conn: Connection) -> None:
    """Mark that served data changed; done last in a transaction to hold the row lock briefly."""
    conn.execute(
        update(DataVersion)
        .where(DataVersion.id == 1)
        .values(version=DataVersion.version + 1, updated_at=utcnow())
    )


def read_data_version(*, conn: Connection) -> int:
    return int(
        conn.execute(select(DataVersion.version).where(DataVersion.id == 1)).scalar_one_or_none()
        or 0
    )


def load_checkpoint(*, conn: Connection, source: str) -> EtlCheckpoint | None:
    row = (
        conn.execute(select(EtlCheckpoint.__table__).where(EtlCheckpoint.source == source))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return EtlCheckpoint(**dict(row))


def save_checkpoint(
    *, conn: Connection, source: str, last_value: str | None, state: Any, run_id: int | None
) -> None:
    table = EtlCheckpoint.__table__
    values = {
        "source": source,
        "last_value": last_value,
        "state": state,
        "run_id": run_id,
        "updated_at": utcnow(),
    }
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source"],
        set_={k: stmt.excluded[k] for k in ("last_value", "state", "run_id", "updated_at")},
    )
    conn.execute(stmt, values)


def latest_records(
    *, conn: Connection, source: str
) -> dict[str, tuple[str | None, datetime | None]]:
    """coin_id → (payload hash, source_updated_at) of what is stored for a source."""
    rows = conn.execute(
        select(
            UnifiedCrypto.coin_id, UnifiedCrypto.payload_hash, UnifiedCrypto.source_updated_at
        ).where(UnifiedCrypto.source == source)
    )
    return {coin_id: (digest, updated) for coin_id, digest, updated in rows}


def max_source_updated_at(*, conn: Connection, source: str) -> datetime | None:
    value: datetime | None = conn.execute(
        select(func.max(UnifiedCrypto.source_updated_at)).where(UnifiedCrypto.source == source)
    ).scalar_one_or_none()
    return value
