"""A served-size database for the API bench, filled by bulk SQL (not the pipeline): assets, latest rows, history."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

START = datetime(2024, 1, 1, tzinfo=UTC)
HOT_ASSET = 1  # gets one year of hourly observations
SOURCES = ("coingecko", "coinpaprika")


def _assets(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        yield (i, f"C{i}", f"Coin {i}", f"c{i}|coin {i}", False, None, START)


def _asset_sources(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        for source in SOURCES:
            yield (i, source, f"coin-{i}", f"C{i}", f"Coin {i}", START)


def _unified(n: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(1)
    for i in range(1, n + 1):
        price = 10 ** rng.uniform(-4, 4)
        mcap = 4e11 * 0.999**i
        for source in SOURCES:
            yield (
                i, source, f"coin-{i}", "BTC" if i == HOT_ASSET else f"C{i}", f"Coin {i}", i,
                price, mcap, mcap * 0.05, mcap / price, mcap / price, None, 1.5, now, now, None,
                f"{i:032x}",
            )  # fmt: skip


def _history(n_assets: int, points: int) -> Iterator[tuple[Any, ...]]:
    """One year hourly for the hot asset; the rest spread evenly (hourly) over the other assets."""
    hot = 24 * 366
    per_asset = max(1, (points - hot) // max(1, n_assets - 1))
    for i in range(1, n_assets + 1):
        count = hot if i == HOT_ASSET else per_asset
        price = 100.0 + i
        for h in range(count):
            moment = START + timedelta(hours=h)
            p = price * (1 + (h % 50) / 1000)
            yield (i, "coingecko", moment, p, p * 1e6, p * 1e4, p, p * 1.01, p * 0.99, None)


UNIFIED_COLS = (
    "asset_id", "source", "coin_id", "symbol", "name", "rank", "price_usd", "market_cap_usd",
    "volume_24h_usd", "circulating_supply", "total_supply", "max_supply", "percent_change_24h",
    "source_updated_at", "ingested_at", "run_id", "payload_hash",
)  # fmt: skip
HISTORY_COLS = (
    "asset_id", "source", "observed_at", "price_usd", "market_cap_usd", "volume_24h_usd",
    "open_usd", "high_usd", "low_usd", "run_id",
)  # fmt: skip
ASSET_COLS = ("id", "symbol", "name", "match_key", "flagged", "flag_reason", "created_at")
ASSET_SOURCE_COLS = ("asset_id", "source", "coin_id", "symbol", "name", "created_at")


def fill(url: str, *, assets: int, points: int) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    tables = {
        "asset": (ASSET_COLS, _assets(assets)),
        "asset_source": (ASSET_SOURCE_COLS, _asset_sources(assets)),
        "unified_crypto": (UNIFIED_COLS, _unified(assets, now)),
        "price_history": (HISTORY_COLS, _history(assets, points)),
    }
    started = time.perf_counter()
    if url.startswith("sqlite"):
        _fill_sqlite(url.removeprefix("sqlite:///"), tables)
    else:
        _fill_pg(url, tables)
    return {
        "assets": assets,
        "history_points": points,
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


def _sqlite_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return (
            value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
    return value


def _fill_sqlite(path: str, tables: dict[str, Any]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN")
        for name, (columns, rows) in tables.items():
            marks = ", ".join("?" for _ in columns)
            conn.executemany(
                f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})",
                (tuple(_sqlite_cell(v) for v in row) for row in rows),
            )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _fill_pg(url: str, tables: dict[str, Any]) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur:
            for name, (columns, rows) in tables.items():
                with cur.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('asset', 'id'), (SELECT max(id) FROM asset))"
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
