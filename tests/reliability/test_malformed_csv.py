"""Malformed CSV files: random bytes, wrong encodings, ragged rows, a huge field, a line cut in the
middle, a file rewritten between passes. No crash; bad rows quarantined with a reason; good rows load."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.ingestion.csv_source import SETTLE_SECONDS
from kasparro.pipeline.runner import run_pass
from tests.fakes import coins
from tests.fakes.data import UNIFIED_HEADER
from tests.reliability.csvgen import csv_row, reconcile
from tests.reliability.helpers import duplicates, rows, scalar

WORLD = coins(10)
HEADER = (",".join(UNIFIED_HEADER) + "\n").encode()


def good(start: int, count: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for index in range(start, start + count):
        writer.writerow(csv_row(WORLD[index % len(WORLD)], index))
    return out.getvalue().encode()


def random_lines(count: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    forbidden = set(b'\n\r"\x00')  # NUL has its own test below
    lines = []
    for _ in range(count):
        raw = bytes(b for b in rng.randbytes(80) if b not in forbidden)
        lines.append(raw + b"\xff\n")  # never valid UTF-8
    return b"".join(lines)


def latin1_rows(count: int) -> bytes:
    lines = (
        f"ÉTÉ,Crème brûlée,{i}.5,1,1,,,,0.1,1,2024-03-01T00:00:{i:02d}Z\n" for i in range(count)
    )
    return "".join(lines).encode("latin-1")


def ragged_rows() -> bytes:
    return b"BTC,Bitcoin,1\nETH,Ethereum,2,3,4,5,6,7,8,9,10,11,12,13\n,\n"


# (name, file bytes, good rows expected to load, bad rows expected quarantined, reason fragment)
def _cases(big_field_mb: int) -> list[tuple[str, bytes, int, int, str]]:
    big = b"X" * (big_field_mb << 20)
    return [
        ("random-bytes", HEADER + good(0, 20) + random_lines(15) + good(20, 20), 40, 15, "UTF-8"),
        ("latin-1", HEADER + good(0, 10) + latin1_rows(5) + good(10, 10), 20, 5, "UTF-8"),
        ("ragged", HEADER + good(0, 10) + ragged_rows() + good(10, 10), 20, 3, "fields"),
        ("huge-field", HEADER + good(0, 10) + b"BTC,Bitcoin," + big + b",1,1,,,,0.1,1,2024-01-01T00:00:00Z\n" + good(10, 10), 20, 1, "longer than"),
        ("bad-values", HEADER + good(0, 10) + b"BTC,Bitcoin,not-a-price,1,1,,,,0.1,1,2024-01-01T00:00:00Z\n,,,,,,,,,,\n" + good(10, 10), 20, 2, ""),
    ]  # fmt: skip


def _shift(content: bytes, by: int) -> bytes:
    """The same file with its good rows' timestamps moved ``by`` minutes (the layout is fixed)."""
    if not by:
        return content
    lines = content.split(b"\n")
    out = []
    for line in lines:
        cells = line.split(b",")
        if len(cells) == len(UNIFIED_HEADER) and cells[-1].startswith(b"2024-01"):
            cells[-1] = cells[-1].replace(b"2024-01", f"20{25 + by // 1000}-01".encode(), 1)
        out.append(b",".join(cells))
    return b"\n".join(out)


def _run(settings: Settings, engine: Engine, *, served: int) -> tuple[str, int, int, list[str]]:
    """One CSV run over ``served`` rows, reconciled; its status, loaded, quarantined, reasons."""
    (result,) = run_pass(settings, engine, sources=["csv"])
    reconcile(engine, result, served=served)
    reasons = [
        r
        for (r,) in rows(engine, "SELECT reason FROM quarantine WHERE run_id = :r", r=result.run_id)
    ]
    return result.status, result.loaded, result.quarantined, reasons


@pytest.mark.parametrize(
    "big_mb",
    [pytest.param(5, id="ci-5MB"), pytest.param(100, id="soak-100MB", marks=pytest.mark.slow)],
)
def test_malformed_files_quarantine_bad_rows_and_load_good_ones(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path, big_mb: int
) -> None:
    for number, (name, content, good_rows, bad_rows, reason) in enumerate(_cases(big_mb)):
        content = _shift(content, 1000 * number)  # each file's good rows are new observations
        path = tmp_path / f"{name}.csv"
        path.write_bytes(content)
        settings = make_settings(csv_path=path, batch_size=7)
        with engine.begin() as conn:  # every file is a fresh source state
            conn.exec_driver_sql("DELETE FROM etl_checkpoint")
        status, loaded, quarantined, reasons = _run(settings, engine, served=good_rows + bad_rows)
        assert (status, loaded, quarantined) == ("partial", good_rows, bad_rows), name
        assert len(reasons) == bad_rows, name
        assert all(reasons), name
        assert all(reason in r for r in reasons), (name, reasons)
    assert duplicates(engine) == {}


UTF16 = (HEADER + good(0, 12)).decode().encode("utf-16")
NUL_ROW = b"BTC,Bit\x00coin,1,1,1,,,,0.1,1,2024-02-01T00:00:00Z\n"
UNREADABLE = "symbol: Field required; name: Field required; price_usd: Field required"


@pytest.mark.parametrize(
    ("content", "loaded", "reasons", "drift"),
    [
        pytest.param(
            HEADER + good(0, 5) + NUL_ROW + good(5, 5),
            10,
            {"contains NUL characters, which the database cannot store": 1},
            set(),
            id="nul-byte",
        ),
        # UTF-16 reads as UTF-8 with a NUL after every character: no header name is known, every
        # row lacks the required columns, and the lone NUL after the last newline is a row too
        pytest.param(
            UTF16,
            0,
            {UNREADABLE: 12, "expected 11 fields, got 1": 1},
            {("symbol", "missing"), ("name", "missing"), ("price_usd", "missing")},
            id="utf-16",
        ),
    ],
)
def test_nul_bytes_and_utf16_are_quarantined_without_failing_the_run(
    make_settings: Callable[..., Settings],
    engine: Engine,
    tmp_path: Path,
    content: bytes,
    loaded: int,
    reasons: dict[str, int],
    drift: set[tuple[str, str]],
) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(content)
    _settled(path)
    served = loaded + sum(reasons.values())
    status, got_loaded, _, got_reasons = _run(make_settings(csv_path=path), engine, served=served)

    assert (status, got_loaded) == ("partial", loaded)
    assert Counter(got_reasons) == reasons
    missing = rows(engine, "SELECT field, kind FROM schema_drift WHERE kind = 'missing'")
    assert {(f, k) for f, k in missing} == drift


def _settled(path: Path) -> None:
    """Date the file's last change further back than SETTLE_SECONDS: no writer is appending."""
    past = time.time() - 10 * SETTLE_SECONDS
    os.utime(path, (past, past))


def _offset(engine: Engine) -> int:
    state = scalar(engine, "SELECT state FROM etl_checkpoint WHERE source = 'csv'")
    return int((json.loads(state) if isinstance(state, str) else state)["offset"])


def test_line_cut_in_the_middle_loads_once_the_writer_finishes_it(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "growing.csv"
    complete = good(10, 1)
    path.write_bytes(HEADER + good(0, 10) + complete[:25])
    settings = make_settings(csv_path=path)
    first = _run(settings, engine, served=10)  # the cut line was written just now: held back
    assert _offset(engine) == len(HEADER + good(0, 10))
    with path.open("ab") as handle:
        handle.write(complete[25:])
    second = _run(settings, engine, served=1)

    assert first[:3] == ("success", 10, 0)
    assert second[:3] == ("success", 1, 0)
    assert scalar(engine, "SELECT count(*) FROM price_history") == 11


CUT = good(10, 1)  # BTC,Bitcoin,<price>,<cap>,<volume>,,,,0.5,1,2024-01-01T00:10:00Z
KAGGLE = (
    b"SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n"
    b"1,Bitcoin,BTC,2013-04-29 23:59:59,147.48,134.0,134.44,144.53,0.0,1603768865.0\n"
    b"2,Bitcoin,BTC,2013-04-30 23:59:59,146.9,134.05,144.0,139.0,0.0,1542813125.0\n"
)


# A final line without a newline, in a file nobody has touched for SETTLE_SECONDS, is read as a
# complete line (many files simply end without one): cut where the row no longer parses, it is
# quarantined with the reason; cut where it still parses, it loads as the truncated value says.
@pytest.mark.parametrize(
    ("content", "served", "loaded", "reason"),
    [
        pytest.param(HEADER + good(0, 10) + CUT[:30], 11, 10, "expected 11 fields, got 4", id="mid-row"),
        pytest.param(HEADER + good(0, 10) + CUT[:-4], 11, 10, "last_updated: Input should be a valid datetime or date, unexpected extra characters at the end of the input", id="mid-timestamp"),
        pytest.param(HEADER + good(0, 10) + CUT[:-5], 11, 11, None, id="mid-timestamp-parses"),  # T00:10
        pytest.param(KAGGLE[:-8], 2, 2, None, id="mid-number-parses"),
    ],
)  # fmt: skip
def test_a_settled_unterminated_last_line_is_read_as_complete(
    make_settings: Callable[..., Settings],
    engine: Engine,
    tmp_path: Path,
    content: bytes,
    served: int,
    loaded: int,
    reason: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes(content)
    _settled(path)
    settings = make_settings(csv_path=path)
    with caplog.at_level(logging.WARNING, logger="kasparro.ingestion.csv_source"):
        status, got_loaded, _, reasons = _run(settings, engine, served=served)

    # a cut row that still parses is indistinguishable from a whole one: it is said, loudly
    assert any("last line has no line ending" in r.getMessage() for r in caplog.records)
    assert got_loaded == loaded
    assert (status, reasons) == (("partial", [reason]) if reason else ("success", []))
    assert _offset(engine) == len(content)  # read to the end: the next run starts after it
    assert _run(settings, engine, served=0)[:3] == ("success", 0, 0)
    if content.startswith(b"SNo"):  # the concern: "1542813125.0" cut to "15428" is the market cap
        assert scalar(engine, "SELECT min(market_cap_usd) FROM price_history") == 15428


def test_a_recent_unterminated_last_line_waits_for_the_next_run(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes(HEADER + good(0, 10) + CUT[:30])  # written just now: a writer may be at work
    settings = make_settings(csv_path=path)
    held = _run(settings, engine, served=10)
    assert _offset(engine) == len(HEADER + good(0, 10))
    _settled(path)  # the writer never came back
    later = _run(settings, engine, served=1)

    assert held == ("success", 10, 0, [])
    assert later == ("partial", 0, 1, ["expected 11 fields, got 4"])


def test_a_cut_file_then_rewritten_in_place_reprocesses_and_loads_everything(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "rewritten.csv"
    path.write_bytes(HEADER + good(0, 30))
    settings = make_settings(csv_path=path)
    assert _run(settings, engine, served=30)[:3] == ("success", 30, 0)
    path.write_bytes(HEADER + good(0, 15) + good(100, 30))  # same head, new tail, same inode
    status, loaded, quarantined, _ = _run(settings, engine, served=45)
    path.write_bytes(HEADER + good(200, 5))  # shorter than the checkpoint's offset
    status_3, loaded_3, _, _ = _run(settings, engine, served=5)

    assert (status, loaded, quarantined) == (
        "success",
        30,
        0,
    )  # old rows unchanged, new rows loaded
    assert (status_3, loaded_3) == ("success", 5)
    assert rows(engine, "SELECT count(*) FROM price_history") == [(30 + 30 + 5,)]
    assert duplicates(engine) == {}
