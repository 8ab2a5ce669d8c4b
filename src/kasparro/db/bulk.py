"""The hot write path: pre-built ``INSERT … ON CONFLICT`` statements executed straight on the driver.

SQLAlchemy Core costs several microseconds per row in parameter processing; the ingest path's rows
are already validated and typed, so they go to the driver as they are. SQLite takes them through
``executemany`` (in-process, so per-row statements are cheap). PostgreSQL takes one statement per
batch, ``INSERT … SELECT … FROM unnest(<one array per column>)``: a handful of parameters whatever
the batch size (no 32,767-parameter limit) and one round trip instead of one per row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

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


# below SQLite's limit on bound parameters per statement (32,766 since 3.32)
_SQLITE_MAX_PARAMETERS = 30_000


def _unnest_insert(table: str, columns: Sequence[tuple[str, str]], conflict: str) -> str:
    """``INSERT … SELECT … FROM unnest(<one array parameter per column>)`` for PostgreSQL; JSON
    travels as text and is cast on the server."""
    names = ", ".join(c for c, _ in columns)
    # %b: the arrays travel in binary format. With %s, psycopg dumps a list of strings as a text
    # array literal, quoting and escaping every element with a regular expression (measured: most
    # of the time of a 100k-record load went there)
    arrays = ", ".join(f"%b::{'text' if kind == 'jsonb' else kind}[]" for _, kind in columns)
    picks = ", ".join(
        f"c{i}::jsonb" if kind == "jsonb" else f"c{i}" for i, (_, kind) in enumerate(columns)
    )
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    return f"INSERT INTO {table} ({names}) SELECT {picks} FROM unnest({arrays}) AS t({aliases}) {conflict}"  # noqa: S608


def _as_columns(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Row tuples turned into one list per column (the unnest statement's parameters)."""
    return tuple(list(column) for column in zip(*rows, strict=True))


class BulkWriter:
    """Batched inserts for one connection (and its open transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    def timestamp(self, value: datetime | None) -> Any:
        """A UTC timestamp as the dialect stores it (SQLite: SQLAlchemy's naive text format). A
        naive value is taken as UTC, as the source models take one (``schemas.common.as_utc``),
        never as the server's local time."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if self.dialect != "sqlite":
            return value
        if value.tzinfo is not UTC:  # records are mapped to UTC already; skip the conversion then
            value = value.astimezone(UTC)
        # "YYYY-MM-DD HH:MM:SS.ffffff" without the "+00:00" (a third faster than replacing the
        # tzinfo first; positional arguments are quicker than keywords here)
        return value.isoformat(" ", "microseconds")[:26]

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
        with self._driver_cursor() as cursor:
            cursor.execute(_unnest_insert(table, columns, conflict), _as_columns(rows))
            return int(cursor.rowcount)

    def _insert_returning(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[tuple[Any, ...]],
        conflict: str,
        returning: str,
    ) -> list[tuple[Any, ...]]:
        """Like ``_insert``, returning ``returning`` for each row actually inserted. SQLite's
        ``executemany`` cannot return rows, so it gets multi-row ``VALUES`` lists instead."""
        found: list[tuple[Any, ...]] = []
        if not rows:
            return found
        if self.dialect == "sqlite":
            names = ", ".join(c for c, _ in columns)
            group = "(" + ", ".join("?" for _ in columns) + ")"
            per_statement = max(1, _SQLITE_MAX_PARAMETERS // len(columns))
            with self._driver_cursor() as cursor:
                for start in range(0, len(rows), per_statement):
                    part = rows[start : start + per_statement]
                    values = ", ".join(group for _ in part)
                    sql = f"INSERT INTO {table} ({names}) VALUES {values} {conflict} RETURNING {returning}"  # noqa: S608
                    cursor.execute(sql, [value for row in part for value in row])
                    found.extend(map(tuple, cursor.fetchall()))
            return found
        sql = f"{_unnest_insert(table, columns, conflict)} RETURNING {returning}"
        with self._driver_cursor() as cursor:
            cursor.execute(sql, _as_columns(rows))
            found.extend(map(tuple, cursor.fetchall()))
        return found

    def select_in(
        self, query: str, values: Sequence[Any], *, first: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of ``query`` (a ``SELECT … WHERE <column>`` written by this package, ending at the
        column; ``first`` are the values of any ``?`` placeholders before it) for every value in
        ``values``: ``IN (?, …)`` in chunks on SQLite, one ``= ANY(array)`` on PostgreSQL. Cheaper
        than a compiled ``in_()`` with thousands of parameters, which the ingest path runs once
        per batch."""
        found: list[tuple[Any, ...]] = []
        if not values:
            return found
        if self.dialect == "sqlite":
            with self._driver_cursor() as cursor:
                for start in range(0, len(values), _SQLITE_MAX_PARAMETERS):
                    part = list(values[start : start + _SQLITE_MAX_PARAMETERS])
                    marks = ", ".join("?" for _ in part)
                    cursor.execute(f"{query} IN ({marks})", [*first, *part])
                    found.extend(map(tuple, cursor.fetchall()))
            return found
        with self._driver_cursor() as cursor:
            cursor.execute(f"{query.replace('?', '%s')} = ANY(%b)", (*first, list(values)))
            found.extend(map(tuple, cursor.fetchall()))
        return found

    def select_pairs(
        self, table: str, columns: tuple[str, str], pairs: Sequence[tuple[Any, Any]]
    ) -> list[tuple[Any, Any]]:
        """The ``pairs`` of values of ``columns`` (a table and columns of this package's, with an
        index on both) that rows of ``table`` hold: the pairs are joined to the table, so each is
        one index lookup. (SQLite does not use the index for ``(a, b) IN (VALUES …)``.)"""
        found: list[tuple[Any, Any]] = []
        if not pairs:
            return found
        first, second = columns
        on = f"t.{first} = v.a AND t.{second} = v.b"
        if self.dialect == "sqlite":
            per_statement = _SQLITE_MAX_PARAMETERS // 2
            with self._driver_cursor() as cursor:
                for start in range(0, len(pairs), per_statement):
                    part = pairs[start : start + per_statement]
                    values = ", ".join("(?, ?)" for _ in part)
                    cursor.execute(
                        f"WITH v(a, b) AS (VALUES {values}) "  # noqa: S608 - constant names
                        f"SELECT v.a, v.b FROM v JOIN {table} AS t ON {on}",
                        [value for pair in part for value in pair],
                    )
                    found.extend(map(tuple, cursor.fetchall()))
            return found
        with self._driver_cursor() as cursor:
            cursor.execute(
                f"SELECT v.a, v.b FROM unnest(%b::text[], %b::text[]) AS v(a, b) "  # noqa: S608
                f"JOIN {table} AS t ON {on}",
                ([str(a) for a, _ in pairs], [str(b) for _, b in pairs]),
            )
            found.extend(map(tuple, cursor.fetchall()))
        return found

    def select_after(self, query: str, value: Any) -> list[tuple[Any, ...]]:
        """Rows of ``query`` (ending at a column) where that column is greater than ``value``,
        read through the driver: a first load reads thousands of rows a batch this way."""
        mark = "?" if self.dialect == "sqlite" else "%s"
        with self._driver_cursor() as cursor:
            cursor.execute(f"{query} > {mark}", (value,))
            return list(map(tuple, cursor.fetchall()))

    @contextlib.contextmanager
    def _driver_cursor(self) -> Iterator[Any]:
        """A cursor of the driver itself (sqlite3 or psycopg) on the connection's transaction;
        its errors are raised as SQLAlchemy's, as the rest of the code expects."""
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        driver_error = self.conn.dialect.loaded_dbapi.Error
        try:
            yield cursor
        except driver_error as exc:
            raise DBAPIError.instance(None, None, exc, driver_error) from exc
        finally:
            cursor.close()

    def insert_raw(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Raw payloads (JSON text); one already stored for its coin with the same hash is skipped."""
        self._insert(table, RAW_COLUMNS, rows, "ON CONFLICT (coin_id, payload_hash) DO NOTHING")

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

    def insert_assets(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
        """New canonical assets; returns match_key → id for those inserted. A match key another
        writer created first is left to that writer (and missing from the result)."""
        inserted = self._insert_returning(
            "asset", ASSET_COLUMNS, rows, "ON CONFLICT (match_key) DO NOTHING", "match_key, id"
        )
        return {key: asset_id for key, asset_id in inserted}  # noqa: C416 - rows are tuples

    def insert_asset_sources(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Source-id mappings (asset_id, source, coin_id, symbol, name, created_at); returns how
        many were new."""
        return self._insert(
            "asset_source", ASSET_SOURCE_COLUMNS, rows, "ON CONFLICT (source, coin_id) DO NOTHING"
        )
