"""Ingest baselines: (a) the spec's literal per-record algorithm, (b) the database's bulk-load
ceiling, and (d) a floor for any Python implementation: (b) plus reading and hashing the records."""

from __future__ import annotations

import csv
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import insert, select, update
from sqlalchemy.engine import make_url

from kasparro.db.engine import WRITER_CACHE_KIB, make_engine
from kasparro.db.models import Asset, UnifiedCrypto, utcnow
from kasparro.ingestion.base import serialize
from kasparro.ingestion.csv_source import normalize_header
from kasparro.schemas.csv import CSV_NUMBER_FIELDS
from kasparro.schemas.unified import match_key

UNIQUE_KEYS = {
    "asset": ("match_key",),
    "asset_source": ("source", "coin_id"),
    "unified_crypto": ("asset_id", "source"),
    "price_history": ("asset_id", "source", "observed_at"),
}
LITERAL_TIME_CAP = 10.0  # seconds; the literal algorithm is extrapolated from what it did by then


# (a) literal ----------------------------------------------------------------------------------


def _literal_records(source: str, dataset: Any, ingestion: Any, cap: int) -> list[Any]:
    if source != "csv":
        return list(dataset.full[:cap])
    records: list[Any] = []
    for batch in ingestion.fetch(None):
        records.extend(batch.records)
        if len(records) >= cap:
            break
    return records[:cap]


def literal(
    source: str, db: str, template: Any, dataset: Any, present: int, cap: int
) -> dict[str, Any]:
    """Per record: validate, get-or-create its asset, SELECT by (coin_id, source), then UPDATE or
    INSERT into unified_crypto; commit every 10 records. No raw or history writes (less work than
    Kasparro does), so the ratio against it is conservative."""
    from bench.ingest import bench_settings, make_source, run_once

    url = template.fresh()
    engine = make_engine(url)
    try:
        if present:
            run_once(source, url, dataset.half)
        ingestion = make_source(source, bench_settings(url), engine, dataset.full)
        records = _literal_records(source, dataset, ingestion, cap)
        table: Any = UnifiedCrypto.__table__
        done = 0
        started = time.perf_counter()
        with engine.connect() as conn:
            trans = conn.begin()
            for payload in records:
                try:
                    rec = ingestion.to_unified(
                        ingestion.model.model_validate(ingestion.normalize(payload))
                    )
                except Exception:
                    done += 1
                    continue
                key = match_key(rec.symbol, rec.name)
                asset_id = conn.execute(select(Asset.id).where(Asset.match_key == key)).scalar()
                if asset_id is None:
                    asset_id = conn.execute(
                        insert(Asset)
                        .values(
                            symbol=rec.symbol, name=rec.name, match_key=key, created_at=utcnow()
                        )
                        .returning(Asset.id)
                    ).scalar_one()
                values = {
                    "asset_id": asset_id, "source": source, "coin_id": rec.coin_id, "symbol": rec.symbol,
                    "name": rec.name, "rank": rec.rank, "price_usd": rec.price_usd,
                    "market_cap_usd": rec.market_cap_usd, "volume_24h_usd": rec.volume_24h_usd,
                    "circulating_supply": rec.circulating_supply, "total_supply": rec.total_supply,
                    "max_supply": rec.max_supply, "percent_change_24h": rec.percent_change_24h,
                    "source_updated_at": rec.source_updated_at, "ingested_at": utcnow(),
                }  # fmt: skip
                existing = conn.execute(
                    select(table.c.id).where(
                        table.c.coin_id == rec.coin_id, table.c.source == source
                    )
                ).scalar()
                if existing is None:
                    conn.execute(insert(table).values(**values))
                else:
                    conn.execute(update(table).where(table.c.id == existing).values(**values))
                done += 1
                if done % 10 == 0:
                    trans.commit()
                    trans = conn.begin()
                    if time.perf_counter() - started > LITERAL_TIME_CAP:
                        break
            trans.commit()
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
        template.drop(url)
    return {
        "records": done,
        "seconds": round(seconds, 3),
        "records_per_s": round(done / seconds),
        "extrapolated": True,
        "note": f"ran {done:,} records (cap {cap:,}, {LITERAL_TIME_CAP:.0f}s); rate extrapolated",
    }


# (b) ceiling ----------------------------------------------------------------------------------


Captured = dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]


def _unique(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[Any]:
    key = [columns.index(k) for k in UNIQUE_KEYS.get(table, ("payload_hash",))]
    seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        seen[tuple(row[i] for i in key)] = row
    return list(seen.values())


def ceiling(db: str, template: Any, captured: Captured, *, commit_every: int = 0) -> float:
    """Seconds to bulk-load the rows Kasparro wrote (raw, unified, history, and the assets and
    source mappings of coins new to it) into empty copies of those tables (same columns and
    indexes, no foreign keys), no validation: in one transaction, or with ``commit_every`` rows
    of each table per transaction (Kasparro's batch size)."""
    tables = {t: (cols, _unique(t, cols, rows)) for t, (cols, rows) in captured.items() if rows}
    if not tables:
        return 0.0
    url = template.fresh()
    try:
        if db == "postgres":
            return _pg_copy(url, tables, commit_every)
        return _sqlite_executemany(url, tables, commit_every)
    finally:
        template.drop(url)


def _slices(
    tables: dict[str, tuple[Any, list[Any]]], commit_every: int
) -> list[dict[str, list[Any]]]:
    """The rows of every table cut into transactions: slice i of each table goes together."""
    longest = max(len(values) for _, values in tables.values())
    step = commit_every or longest
    return [
        {name: values[start : start + step] for name, (_, values) in tables.items()}
        for start in range(0, longest, step)
    ]


def _pg_value(column: str, value: Any) -> Any:
    return Jsonb(value) if column == "payload" and not isinstance(value, str) else value


def _pg_copy(url: str, tables: Captured, commit_every: int) -> float:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    prepared = {
        name: (cols, [tuple(_pg_value(c, v) for c, v in zip(cols, r, strict=True)) for r in rows])
        for name, (cols, rows) in tables.items()
    }
    with psycopg.connect(conninfo) as conn:
        for name in tables:
            conn.execute(f"CREATE TABLE bench_{name} (LIKE {name} INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        for part in _slices(prepared, commit_every):
            with conn.cursor() as cur:
                for name, values in part.items():
                    columns = prepared[name][0]
                    with cur.copy(f"COPY bench_{name} ({', '.join(columns)}) FROM STDIN") as copy:
                        for value in values:
                            copy.write_row(value)
            conn.commit()
        return time.perf_counter() - started


def _sqlite_value(column: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return str(value.astimezone(UTC).replace(tzinfo=None))
    if column == "payload" and not isinstance(value, str):
        return orjson.dumps(value).decode()
    return value


def _sqlite_executemany(url: str, tables: Captured, commit_every: int) -> float:
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            f"PRAGMA cache_size=-{WRITER_CACHE_KIB}"
        )  # the page cache Kasparro's writers get
        prepared = {}
        for name, (columns, rows) in tables.items():
            ddl = conn.execute(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL",
                (name,),
            ).fetchall()
            for kind, sql in ddl:
                if kind == "index":
                    sql = re.sub(r"^CREATE (UNIQUE )?INDEX (\S+)", r"CREATE \1INDEX bench_\2", sql)
                sql = re.sub(
                    rf"\b{name}\b", f"bench_{name}", sql, count=1 if kind == "table" else 0
                )
                conn.execute(sql)
            marks = ", ".join("?" for _ in columns)
            statement = f"INSERT INTO bench_{name} ({', '.join(columns)}) VALUES ({marks})"
            values = [
                tuple(_sqlite_value(c, v) for c, v in zip(columns, r, strict=True)) for r in rows
            ]
            prepared[name] = (statement, values)
        started = time.perf_counter()
        for part in _slices(prepared, commit_every):
            conn.execute("BEGIN")
            for name, values in part.items():
                conn.executemany(prepared[name][0], values)
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


# (d) floor ------------------------------------------------------------------------------------


def read_and_hash(records: Any) -> float:
    """Seconds a Python loop needs to do what no implementation can skip, and nothing else: read
    each record (for a CSV file: parse it into header-to-cell dicts, and turn its numeric cells
    into numbers) and write its payload as canonical JSON with a hash. No validation, no
    identity, no rows built. Added to the ceiling (b) this is the floor (d): the fastest an
    ingest written in Python could load these records here."""
    started = time.perf_counter()
    if isinstance(records, Path):
        with records.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            numeric = [
                i for i, name in enumerate(header) if normalize_header(name) in CSV_NUMBER_FIELDS
            ]
            for row in reader:
                serialize(dict(zip(header, row, strict=True)))
                for i in numeric:
                    float(row[i])
    else:
        for payload in records:
            serialize(payload)
    return time.perf_counter() - started
