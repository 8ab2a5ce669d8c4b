"""The hot write path: pre-built ``INSERT … ON CONFLICT`` statements executed straight on the driver.

SQLAlchemy Core costs several microseconds per row in parameter processing; the ingest path's rows
are already validated and typed, so they go to the driver as they are. SQLite takes them through
``executemany`` (in-process, so per-row statements are cheap). PostgreSQL takes one statement per
batch, ``INSERT … SELECT … FROM unnest(<one array per column>)``: a handful of parameters whatever
the batch size (no 32,767-parameter limit) and one round trip instead of one per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

# (column, PostgreSQL type) in the order rows are given
RAW_COLUMNS = (
    ("run_id", "int"),
    ("coin_id", "text"),
    ("payload", "jsonb"),
    ("payload_hash", "text"),
    ("ingested_at", "timestamptz"),
)
UNIFIED_COLUMNS = (
    ("asset_id", "int"), ("source", "text"), ("coin_id", "text"), ("symbol", "text"), ("name", "text"), ("rank", "int"),
    ("price_usd", "float8"), ("market_cap_usd", "float8"), ("volume_24h_usd", "float8"), ("circulating_supply", "float8"),
    ("total_supply", "float8"), ("max_supply", "float8"), ("percent_change_24h", "float8"),
    ("source_updated_at", "timestamptz"), ("ingested_at", "timestamptz"), ("run_id", "int"), ("payload_hash", "text"),
)  # fmt: skip
HISTORY_COLUMNS = (
    ("asset_id", "int"), ("source", "text"), ("observed_at", "timestamptz"), ("price_usd", "float8"),
    ("market_cap_usd", "float8"), ("volume_24h_usd", "float8"), ("open_usd", "float8"), ("high_usd", "float8"),
    ("low_usd", "float8"), ("run_id", "int"),
)  # fmt: skip
ASSET_COLUMNS = (
    ("symbol", "text"), ("name", "text"), ("match_key", "text"), ("flagged", "bool"), ("flag_reason", "text"),
    ("created_at", "timestamptz"),
)  # fmt: skip
ASSET_SOURCE_COLUMNS = (
    ("asset_id", "int"), ("source", "text"), ("coin_id", "text"), ("symbol", "text"), ("name", "text"),
    ("created_at", "timestamptz"),
)  # fmt: skip
_UNIFIED_UPDATE = ", ".join(
    f"{c} = excluded.{c}" for c, _ in UNIFIED_COLUMNS if c not in ("asset_id", "source")
)
_UNIFIED_CONFLICT = (
    f"ON CONFLICT (asset_id, source) DO UPDATE SET {_UNIFIED_UPDATE} "
    "WHERE unified_crypto.source_updated_at IS NULL OR excluded.source_updated_at IS NULL "
    "OR excluded.source_updated_at >= unified_crypto.source_updated_at"
)


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

    def _insert(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[tuple[Any, ...]],
        conflict: str,
    ) -> int:
        """``INSERT INTO table … conflict`` for every row; returns how many rows were written.
        Table and column names are constants of this module, never input."""
        if not rows:
            return 0
        names = ", ".join(c for c, _ in columns)
        if self.dialect == "sqlite":
            marks = ", ".join("?" for _ in columns)
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}"  # noqa: S608
            return int(self.conn.exec_driver_sql(sql, list(rows)).rowcount)
        arrays = ", ".join(f"%s::{'text' if kind == 'jsonb' else kind}[]" for _, kind in columns)
        picks = ", ".join(
            f"c{i}::jsonb" if kind == "jsonb" else f"c{i}" for i, (_, kind) in enumerate(columns)
        )
        aliases = ", ".join(f"c{i}" for i in range(len(columns)))
        sql = f"INSERT INTO {table} ({names}) SELECT {picks} FROM unnest({arrays}) AS t({aliases}) {conflict}"  # noqa: S608
        columns_data = tuple(list(column) for column in zip(*rows, strict=True))
        # binary parameters: text arrays of JSON would otherwise be quoted and escaped element by element
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, columns_data, binary=True)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def insert_raw(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Raw payloads (JSON text); one already stored with the same hash is skipped."""
        self._insert(table, RAW_COLUMNS, rows, "ON CONFLICT (payload_hash) DO NOTHING")

    def upsert_unified(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Latest record per (asset_id, source); an older observation never overwrites a newer one.
        Rows must be unique per (asset_id, source)."""
        self._insert("unified_crypto", UNIFIED_COLUMNS, rows, _UNIFIED_CONFLICT)

    def insert_history(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Observations; one already stored for (asset_id, source, observed_at) is kept as is."""
        self._insert(
            "price_history",
            HISTORY_COLUMNS,
            rows,
            "ON CONFLICT (asset_id, source, observed_at) DO NOTHING",
        )

    def insert_assets(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """New canonical assets; a match key another writer created first is left to that writer."""
        self._insert("asset", ASSET_COLUMNS, rows, "ON CONFLICT (match_key) DO NOTHING")

    def insert_asset_sources(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Source-id mappings (asset_id, source, coin_id, symbol, name, created_at); returns how
        many were new."""
        return self._insert(
            "asset_source", ASSET_SOURCE_COLUMNS, rows, "ON CONFLICT (source, coin_id) DO NOTHING"
        )
