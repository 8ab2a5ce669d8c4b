"""The hot write path: pre-built ``INSERT … ON CONFLICT`` statements executed straight on the driver.

SQLAlchemy Core costs several microseconds per row in parameter processing; for the ingest path
the rows are already validated and typed, so they go to the DBAPI ``executemany`` as tuples. The
statements are the same on both dialects except for the placeholder and the JSON cast.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

RAW_COLUMNS = ("run_id", "coin_id", "payload", "payload_hash", "ingested_at")
UNIFIED_COLUMNS = (
    "asset_id", "source", "coin_id", "symbol", "name", "rank", "price_usd", "market_cap_usd", "volume_24h_usd",
    "circulating_supply", "total_supply", "max_supply", "percent_change_24h", "source_updated_at", "ingested_at",
    "run_id", "payload_hash",
)  # fmt: skip
HISTORY_COLUMNS = (
    "asset_id", "source", "observed_at", "price_usd", "market_cap_usd", "volume_24h_usd", "open_usd", "high_usd",
    "low_usd", "run_id",
)  # fmt: skip
_UNIFIED_KEY = ("asset_id", "source")


def _placeholders(dialect: str, columns: Sequence[str], json_columns: Sequence[str] = ()) -> str:
    if dialect == "sqlite":
        return ", ".join("?" for _ in columns)
    return ", ".join("%s::jsonb" if c in json_columns else "%s" for c in columns)


class BulkWriter:
    """Batched inserts for one connection (and its open transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    def timestamp(self, value: datetime | None) -> Any:
        """A UTC timestamp as the dialect stores it (SQLite: SQLAlchemy's naive text format)."""
        if value is None or self.dialect != "sqlite":
            return value
        return (
            value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self.conn.exec_driver_sql(sql, list(rows))

    def insert_raw(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Raw payloads (JSON text); one already stored with the same hash is skipped."""
        columns = ", ".join(RAW_COLUMNS)
        values = _placeholders(self.dialect, RAW_COLUMNS, ("payload",))
        # table names come from the models (RAW_MODELS), never from input
        sql = f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (payload_hash) DO NOTHING"  # noqa: S608
        self._many(sql, rows)

    def upsert_unified(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Latest record per (asset_id, source); an older observation never overwrites a newer one."""
        columns = ", ".join(UNIFIED_COLUMNS)
        values = _placeholders(self.dialect, UNIFIED_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in UNIFIED_COLUMNS if c not in _UNIFIED_KEY)
        sql = (
            f"INSERT INTO unified_crypto ({columns}) VALUES ({values}) "  # noqa: S608
            f"ON CONFLICT (asset_id, source) DO UPDATE SET {updates} "
            "WHERE unified_crypto.source_updated_at IS NULL OR excluded.source_updated_at IS NULL "
            "OR excluded.source_updated_at >= unified_crypto.source_updated_at"
        )
        self._many(sql, rows)

    def insert_history(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Observations; one already stored for (asset_id, source, observed_at) is kept as is."""
        columns = ", ".join(HISTORY_COLUMNS)
        values = _placeholders(self.dialect, HISTORY_COLUMNS)
        sql = f"INSERT INTO price_history ({columns}) VALUES ({values}) ON CONFLICT (asset_id, source, observed_at) DO NOTHING"  # noqa: S608
        self._many(sql, rows)

    def insert_assets(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """New canonical assets (symbol, name, match_key, flagged, flag_reason, created_at); a key
        another writer created first is left to that writer."""
        columns = ("symbol", "name", "match_key", "flagged", "flag_reason", "created_at")
        values = _placeholders(self.dialect, columns)
        sql = f"INSERT INTO asset ({', '.join(columns)}) VALUES ({values}) ON CONFLICT (match_key) DO NOTHING"  # noqa: S608
        self._many(sql, rows)

    def insert_asset_sources(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Source-id mappings (asset_id, source, coin_id, symbol, name, created_at)."""
        columns = ("asset_id", "source", "coin_id", "symbol", "name", "created_at")
        values = _placeholders(self.dialect, columns)
        sql = f"INSERT INTO asset_source ({', '.join(columns)}) VALUES ({values}) ON CONFLICT (source, coin_id) DO NOTHING"  # noqa: S608
        self._many(sql, rows)
