"""The CSV source end to end: layouts, bad cells and lines, incremental reads, rewritten files."""

from __future__ import annotations

import math
import os
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.models import EtlRun, Quarantine, UnifiedCrypto
from kasparro.ingestion.base import RunResult
from kasparro.ingestion.csv_source import CsvIngestion
from kasparro.ingestion.sample import SAMPLE_BANNER
from kasparro.pipeline.runner import run_source
from tests.conftest import count_rows

UNIFIED_HEADER = "symbol,name,price_usd,market_cap_usd,volume_24h_usd,rank,last_updated"
RUN = EtlRun.__table__
QUARANTINE = Quarantine.__table__
UNIFIED = UnifiedCrypto.__table__
KAGGLE_HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"


def unified_rows(start: int, count: int) -> list[str]:
    return [
        f"C{i},Coin {i},{i + 0.5},{i * 1000},{i * 10},{i},2024-05-01T00:00:00Z"
        for i in range(start, start + count)
    ]


def kaggle_rows(start: int, count: int) -> list[str]:
    return [
        f"{i},Ethereum,ETH,2021-01-{i:02d} 23:59:59,{i + 2},{i},{i + 1},{i + 1.5},{i * 100},{i * 1e6}"
        for i in range(start, start + count)
    ]


def write(path: Path, header: str, rows: list[str]) -> None:
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode())


def append(path: Path, rows: list[str]) -> None:
    with path.open("ab") as handle:
        handle.write(("\n".join(rows) + "\n").encode())


class CsvRun:
    """Runs the CSV source and reads back what one run recorded."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.path = Path(settings.csv_path)

    def __call__(self) -> tuple[RunResult, dict[str, Any]]:
        result = run_source(self.settings, self.engine, "csv")
        assert result.run_id is not None, result.error
        with self.engine.connect() as conn:
            row = dict(
                conn.execute(sa.select(RUN).where(RUN.c.id == result.run_id)).mappings().one()
            )
        assert row["status"] == result.status
        assert row["fetched"] == row["loaded"] + row["unchanged"] + row["quarantined"], row
        assert (result.fetched, result.loaded, result.unchanged, result.quarantined) == (
            row["fetched"],
            row["loaded"],
            row["unchanged"],
            row["quarantined"],
        )
        return result, row

    def quarantine(self, run_id: int | None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = sa.select(QUARANTINE.c.coin_id, QUARANTINE.c.reason, QUARANTINE.c.record)
            rows = conn.execute(query.where(QUARANTINE.c.run_id == run_id)).mappings()
            return [dict(r) for r in rows]

    def drift(self, run_id: int | None) -> set[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT field, kind FROM schema_drift WHERE run_id = :id"), {"id": run_id}
            )
            return {(f, k) for f, k in rows}

    def unified(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(UNIFIED).where(UNIFIED.c.source == "csv")).mappings()
            return {r["coin_id"]: dict(r) for r in rows}

    def assert_no_nan(self) -> None:
        with self.engine.connect() as conn:
            for table in ("unified_crypto", "price_history"):
                for row in conn.execute(sa.text(f"SELECT * FROM {table}")).mappings():
                    for column, value in row.items():
                        assert not (isinstance(value, float) and math.isnan(value)), (
                            table,
                            column,
                        )


@pytest.fixture
def csv_run(make_settings: Callable[..., Settings], engine: Engine) -> CsvRun:
    return CsvRun(make_settings(), engine)


def test_unified_layout_loads(csv_run: CsvRun) -> None:
    write(csv_run.path, UNIFIED_HEADER, unified_rows(1, 3))
    result, row = csv_run()
    assert (row["status"], row["fetched"], row["loaded"], row["quarantined"]) == (
        "success",
        3,
        3,
        0,
    )
    unified = csv_run.unified()
    assert sorted(unified) == ["c1-coin1", "c2-coin2", "c3-coin3"]
    assert unified["c2-coin2"]["price_usd"] == 2.5
    assert unified["c2-coin2"]["market_cap_usd"] == 2000.0
    assert unified["c2-coin2"]["rank"] == 2
    assert unified["c2-coin2"]["symbol"] == "C2"
    assert count_rows(csv_run.engine, "raw_csv") == 3
    assert count_rows(csv_run.engine, "price_history") == 3
    assert csv_run.drift(result.run_id) == set()


def test_history_layout_loads_every_day_and_keeps_the_latest(csv_run: CsvRun) -> None:
    rows = kaggle_rows(1, 5)
    rows[0] = rows[0].rsplit(",", 1)[0] + ",0.0"  # an early row with an unknown market cap
    write(csv_run.path, KAGGLE_HEADER, rows)
    _, row = csv_run()
    assert (row["status"], row["fetched"], row["loaded"]) == ("success", 5, 5)
    unified = csv_run.unified()
    assert list(unified) == ["eth-ethereum"]
    latest = unified["eth-ethereum"]
    assert latest["price_usd"] == 6.5  # the close of the newest day
    assert latest["source_updated_at"] == datetime(2021, 1, 5, 23, 59, 59, tzinfo=UTC)
    with csv_run.engine.connect() as conn:
        history = conn.execute(
            sa.text(
                "SELECT price_usd, open_usd, high_usd, low_usd, market_cap_usd"
                " FROM price_history ORDER BY observed_at"
            )
        ).all()
    assert len(history) == 5
    assert history[0] == (2.5, 2.0, 3.0, 1.0, None)
    assert history[4][4] == 5e6


def test_byte_order_mark_is_ignored(csv_run: CsvRun) -> None:
    csv_run.path.write_bytes(
        ("\ufeff" + KAGGLE_HEADER + "\n" + "\n".join(kaggle_rows(1, 2)) + "\n").encode()
    )
    result, row = csv_run()
    assert (row["loaded"], row["quarantined"]) == (2, 0)
    assert ("row_number", "missing") not in csv_run.drift(result.run_id)
    assert not any(field.startswith("\ufeff") for field, _ in csv_run.drift(result.run_id))


def test_windows_line_endings(csv_run: CsvRun) -> None:
    csv_run.path.write_bytes(("\r\n".join([UNIFIED_HEADER, *unified_rows(1, 2)]) + "\r\n").encode())
    _, row = csv_run()
    assert (row["loaded"], row["quarantined"]) == (2, 0)
    assert csv_run.unified()["c1-coin1"]["name"] == "Coin 1"


def test_quoted_fields_with_commas_and_newlines(csv_run: CsvRun) -> None:
    write(
        csv_run.path,
        "symbol,name,price_usd,market_cap_usd",
        ['QC,"Coin, with a comma",1.5,""', 'NL,"Multi\nLine ""Coin""",2.5,10', "PL,Plain,3,"],
    )
    _, row = csv_run()
    assert (row["fetched"], row["loaded"], row["quarantined"]) == (3, 3, 0)
    names = {r["symbol"]: r["name"] for r in csv_run.unified().values()}
    assert names == {"QC": "Coin, with a comma", "NL": 'Multi\nLine "Coin"', "PL": "Plain"}


def test_extra_columns_are_drift_and_rows_still_load(csv_run: CsvRun) -> None:
    write(
        csv_run.path,
        "symbol,name,price_usd,exchange,Notes",
        ["BTC,Bitcoin,65000,binance,x", "ETH,Ethereum,3000,kraken,y"],
    )
    result, row = csv_run()
    assert (row["status"], row["loaded"]) == ("success", 2)
    assert {("exchange", "new"), ("notes", "new")} <= csv_run.drift(result.run_id)
    assert row["drift_events"] == len(csv_run.drift(result.run_id))


def test_missing_optional_column_loads_with_nulls(csv_run: CsvRun) -> None:
    write(csv_run.path, "symbol,name,price_usd", ["BTC,Bitcoin,65000"])
    _, row = csv_run()
    assert (row["status"], row["loaded"]) == ("success", 1)
    record = csv_run.unified()["btc-bitcoin"]
    assert record["market_cap_usd"] is None
    assert record["volume_24h_usd"] is None


def test_missing_required_column_quarantines_with_reason(csv_run: CsvRun) -> None:
    write(csv_run.path, "symbol,name,market_cap_usd", ["BTC,Bitcoin,1e12", "ETH,Ethereum,3e11"])
    result, row = csv_run()
    assert (row["status"], row["fetched"], row["loaded"], row["quarantined"]) == (
        "partial",
        2,
        0,
        2,
    )
    quarantined = csv_run.quarantine(result.run_id)
    assert len(quarantined) == 2
    assert all("price_usd" in q["reason"] for q in quarantined)
    assert {q["coin_id"] for q in quarantined} == {"BTC", "ETH"}
    assert quarantined[0]["record"]["symbol"] in ("BTC", "ETH")
    assert ("price_usd", "missing") in csv_run.drift(result.run_id)
    assert count_rows(csv_run.engine, "unified_crypto") == 0


# (label, cells after symbol,name; loaded?, expected market cap when loaded)
CELL_CASES: list[tuple[str, str, bool, float | None]] = [
    ("all good", "1.5,100", True, 100.0),
    ("empty market cap", "1.5,", True, None),
    ("NaN market cap", "1.5,NaN", True, None),
    ("null market cap", "1.5,null", True, None),
    ("non-numeric market cap", "1.5,lots", False, None),
    ("infinite market cap", "1.5,inf", False, None),
    ("NaN price", "NaN,100", False, None),
    ("empty price", ",100", False, None),
    ("non-numeric price", "abc,100", False, None),
    ("negative price", "-2,100", False, None),
]


def test_bad_cells_become_null_or_quarantine_and_never_nan(csv_run: CsvRun) -> None:
    rows = [f"S{i},Coin {i},{cells}" for i, (_, cells, _, _) in enumerate(CELL_CASES)]
    write(csv_run.path, "symbol,name,price_usd,market_cap_usd", rows)
    result, row = csv_run()
    loaded = {f"s{i}-coin{i}": cap for i, (_, _, ok, cap) in enumerate(CELL_CASES) if ok}
    assert row["loaded"] == len(loaded)
    assert row["quarantined"] == len(CELL_CASES) - len(loaded)
    unified = csv_run.unified()
    assert {k: v["market_cap_usd"] for k, v in unified.items()} == loaded
    reasons = {q["coin_id"]: q["reason"] for q in csv_run.quarantine(result.run_id)}
    for i, (label, _, ok, _) in enumerate(CELL_CASES):
        assert (f"S{i}" in reasons) is (not ok), label
    assert "market_cap_usd" in reasons["S4"]
    assert "price_usd" in reasons["S6"]
    csv_run.assert_no_nan()


def test_ragged_rows_are_quarantined(csv_run: CsvRun) -> None:
    write(
        csv_run.path,
        "symbol,name,price_usd",
        ["BTC,Bitcoin,65000", "ETH,Ethereum", "SOL,Solana,150,extra", "ADA,Cardano,0.5"],
    )
    result, row = csv_run()
    assert (row["fetched"], row["loaded"], row["quarantined"]) == (4, 2, 2)
    reasons = sorted(q["reason"] for q in csv_run.quarantine(result.run_id))
    assert reasons == ["expected 3 fields, got 2", "expected 3 fields, got 4"]
    assert sorted(csv_run.unified()) == ["ada-cardano", "btc-bitcoin"]


def test_invalid_utf8_line_is_quarantined(csv_run: CsvRun) -> None:
    csv_run.path.write_bytes(
        b"symbol,name,price_usd\nBTC,Bitcoin,65000\nBAD,Caf\xe9 \xff coin,1\nETH,Ethereum,3000\n"
    )
    result, row = csv_run()
    assert (row["fetched"], row["loaded"], row["quarantined"]) == (3, 2, 1)
    (bad,) = csv_run.quarantine(result.run_id)
    assert "UTF-8" in bad["reason"]
    assert sorted(csv_run.unified()) == ["btc-bitcoin", "eth-ethereum"]


def test_overlong_line_is_quarantined_without_storing_it(csv_run: CsvRun) -> None:
    huge = "x" * (2 * 1024 * 1024)
    write(
        csv_run.path,
        "symbol,name,price_usd",
        ["BTC,Bitcoin,65000", f"BIG,{huge},1", "ETH,Ethereum,3000"],
    )
    result, row = csv_run()
    assert (row["fetched"], row["loaded"], row["quarantined"]) == (3, 2, 1)
    (bad,) = csv_run.quarantine(result.run_id)
    assert "longer than" in bad["reason"]
    assert len(repr(bad["record"])) < 20_000
    assert sorted(csv_run.unified()) == ["btc-bitcoin", "eth-ethereum"]


def test_overlong_quoted_field_does_not_swallow_following_rows(csv_run: CsvRun) -> None:
    huge = "y" * (2 * 1024 * 1024)
    write(
        csv_run.path,
        "symbol,name,price_usd",
        ["BTC,Bitcoin,65000", f'BIG,"{huge}",1', "ETH,Ethereum,3000"],
    )
    _, row = csv_run()
    assert (row["loaded"], row["quarantined"]) == (2, 1)


def test_appended_rows_are_the_only_ones_processed_next_run(csv_run: CsvRun) -> None:
    write(csv_run.path, KAGGLE_HEADER, kaggle_rows(1, 5))
    _, first = csv_run()
    assert (first["fetched"], first["loaded"]) == (5, 5)
    append(csv_run.path, kaggle_rows(6, 3))
    _, second = csv_run()
    assert (second["fetched"], second["loaded"], second["unchanged"]) == (3, 3, 0)
    _, third = csv_run()
    assert (third["fetched"], third["loaded"]) == (0, 0)
    assert count_rows(csv_run.engine, "price_history") == 8
    assert count_rows(csv_run.engine, "raw_csv") == 8


def test_incremental_reads_across_small_batches(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    run = CsvRun(make_settings(batch_size=2), engine)
    write(run.path, KAGGLE_HEADER, kaggle_rows(1, 7))
    _, first = run()
    assert (first["fetched"], first["loaded"]) == (7, 7)
    append(run.path, kaggle_rows(8, 5))
    _, second = run()
    assert (second["fetched"], second["loaded"]) == (5, 5)
    assert count_rows(engine, "price_history") == 12


def _replace(path: Path, header: str, rows: list[str]) -> None:
    """Write a new file and move it over the old one (a new inode), as editors and exports do."""
    fresh = path.with_suffix(".new")
    write(fresh, header, rows)
    os.replace(fresh, path)


@pytest.mark.parametrize("how", ["replaced", "rewritten in place"])
def test_rewritten_file_is_reprocessed_idempotently(csv_run: CsvRun, how: str) -> None:
    rows = kaggle_rows(1, 6)
    write(csv_run.path, KAGGLE_HEADER, rows)
    csv_run()
    changed = [rows[0].replace(",2.5,", ",2.75,", 1), *rows[1:]]  # first day's close corrected
    if how == "replaced":
        _replace(csv_run.path, KAGGLE_HEADER, changed)
    else:
        write(csv_run.path, KAGGLE_HEADER, changed)
    _, row = csv_run()
    assert (row["fetched"], row["loaded"], row["unchanged"], row["quarantined"]) == (6, 1, 5, 0)
    assert count_rows(csv_run.engine, "price_history") == 6
    assert count_rows(csv_run.engine, "raw_csv") == 7  # the corrected payload is new raw data
    _, again = csv_run()
    assert (again["fetched"], again["loaded"]) == (0, 0)


def test_same_content_rewritten_adds_nothing(csv_run: CsvRun) -> None:
    rows = unified_rows(1, 4)
    write(csv_run.path, UNIFIED_HEADER, rows)
    csv_run()
    before = {
        t: count_rows(csv_run.engine, t) for t in ("raw_csv", "price_history", "unified_crypto")
    }
    _replace(csv_run.path, UNIFIED_HEADER, rows)
    _, row = csv_run()
    assert (row["fetched"], row["loaded"], row["unchanged"]) == (4, 0, 4)
    after = {
        t: count_rows(csv_run.engine, t) for t in ("raw_csv", "price_history", "unified_crypto")
    }
    assert after == before


def test_missing_file_creates_a_labelled_sample(csv_run: CsvRun) -> None:
    csv_run.path.unlink(missing_ok=True)
    _, row = csv_run()
    assert csv_run.path.exists()
    text = csv_run.path.read_text(encoding="utf-8")
    assert text.startswith(SAMPLE_BANNER)
    assert "SAMPLE" in text.splitlines()[0]
    assert row["status"] == "success"
    assert row["loaded"] == row["fetched"] == len(text.strip().splitlines()) - 2
    assert "btc-bitcoin" in csv_run.unified()


def test_header_only_and_empty_files_load_nothing(csv_run: CsvRun) -> None:
    csv_run.path.write_bytes(b"")
    _, empty = csv_run()
    assert (empty["status"], empty["fetched"]) == ("success", 0)
    csv_run.path.write_bytes(b"symbol,name,price_usd\n\n\n")
    _, header_only = csv_run()
    assert (header_only["status"], header_only["fetched"]) == ("success", 0)
    assert count_rows(csv_run.engine, "unified_crypto") == 0


def test_history_layout_reports_no_drift(csv_run: CsvRun) -> None:
    write(csv_run.path, KAGGLE_HEADER, kaggle_rows(1, 2))
    result, row = csv_run()
    assert row["drift_events"] == 0
    assert csv_run.drift(result.run_id) == set()


def test_rewrite_in_place_beyond_the_first_block_is_detected(csv_run: CsvRun) -> None:
    rows = unified_rows(100, 200)  # well over 4 KiB
    write(csv_run.path, UNIFIED_HEADER, rows)
    csv_run()
    corrected = [*rows[:-1], rows[-1].replace(",299.5,", ",298.5,", 1)]  # same length
    size = csv_run.path.stat().st_size
    with csv_run.path.open("r+b") as handle:  # same inode, same size, same head
        handle.write(("\n".join([UNIFIED_HEADER, *corrected]) + "\n").encode())
    assert csv_run.path.stat().st_size == size
    _, row = csv_run()
    assert row["loaded"] == 1
    assert csv_run.unified()["c299-coin299"]["price_usd"] == 298.5


def test_invalid_utf8_inside_a_multiline_quoted_field_is_quarantined(csv_run: CsvRun) -> None:
    csv_run.path.write_bytes(
        b'symbol,name,price_usd\nBAD,"Caf\xe9\nsecond line",1\nETH,Ethereum,3000\n'
    )
    result, row = csv_run()
    assert (row["loaded"], row["quarantined"]) == (1, 1)
    (bad,) = csv_run.quarantine(result.run_id)
    assert "UTF-8" in bad["reason"]
    assert "\ufffd" not in "".join(r["name"] for r in csv_run.unified().values())


def test_reading_an_overlong_line_keeps_memory_flat(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    settings = make_settings()
    path = Path(settings.csv_path)
    with path.open("wb") as handle:
        handle.write(b"symbol,name,price_usd\nBTC,Bitcoin,65000\nBIG,")
        chunk = b"z" * (1 << 20)
        for _ in range(24):  # a 24 MiB field
            handle.write(chunk)
        handle.write(b",1\nETH,Ethereum,3000\n")
    source = CsvIngestion(settings, engine)
    tracemalloc.start()
    try:
        batches = list(source.fetch(None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    records = [r for b in batches for r in b.records]
    assert [r["symbol"] for r in records] == ["BTC", "ETH"]
    assert [q.reason for b in batches for q in b.quarantined] == [
        f"line longer than {1 << 20} bytes"
    ]
    assert peak < 8 * (1 << 20)
