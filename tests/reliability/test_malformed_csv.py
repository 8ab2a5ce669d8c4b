"""Malformed CSV files: random bytes, wrong encodings, ragged rows, a huge field, a line cut in the
middle, a file rewritten between passes. No crash; bad rows quarantined with a reason; good rows load."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.fakes import coins
from tests.fakes.data import UNIFIED_HEADER
from tests.reliability.csvgen import csv_row
from tests.reliability.helpers import duplicates, rows

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


def _run(settings: Settings, engine: Engine) -> tuple[str, int, int, list[str]]:
    (result,) = run_pass(settings, engine, sources=["csv"])
    assert result.fetched == result.loaded + result.unchanged + result.quarantined
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
        status, loaded, quarantined, reasons = _run(settings, engine)
        assert (status, loaded, quarantined) == ("partial", good_rows, bad_rows), name
        assert len(reasons) == bad_rows, name
        assert all(reasons), name
        assert all(reason in r for r in reasons), (name, reasons)
    assert duplicates(engine) == {}


@pytest.mark.parametrize(
    ("name", "content", "good_rows"),
    [
        ("utf-16", (HEADER + good(0, 12)).decode().encode("utf-16"), 0),
        (
            "nul-byte",
            HEADER
            + good(0, 5)
            + b"BTC,Bit\x00coin,1,1,1,,,,0.1,1,2024-02-01T00:00:00Z\n"
            + good(5, 5),
            10,
        ),
    ],
)
def test_nul_bytes_are_quarantined_without_failing_the_run(
    make_settings: Callable[..., Settings],
    engine: Engine,
    tmp_path: Path,
    name: str,
    content: bytes,
    good_rows: int,
) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(content)
    status, loaded, quarantined, reasons = _run(make_settings(csv_path=path), engine)
    assert status in ("success", "partial")
    assert loaded >= good_rows
    assert (
        loaded + quarantined >= good_rows + 1
    )  # the NUL line is stored or quarantined, never lost
    assert len(reasons) == quarantined
    assert all(reasons)


def test_line_cut_in_the_middle_loads_once_the_writer_finishes_it(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "growing.csv"
    complete = good(10, 1)
    path.write_bytes(HEADER + good(0, 10) + complete[:25])
    settings = make_settings(csv_path=path)
    first = _run(settings, engine)
    with path.open("ab") as handle:
        handle.write(complete[25:])
    second = _run(settings, engine)

    assert first[1] == 10
    assert (first[1] + second[1], first[2] + second[2]) == (11, 0)


def test_a_cut_file_then_rewritten_in_place_reprocesses_and_loads_everything(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "rewritten.csv"
    path.write_bytes(HEADER + good(0, 30))
    settings = make_settings(csv_path=path)
    assert _run(settings, engine)[:3] == ("success", 30, 0)
    path.write_bytes(HEADER + good(0, 15) + good(100, 30))  # same head, new tail, same inode
    status, loaded, quarantined, _ = _run(settings, engine)
    path.write_bytes(HEADER + good(200, 5))  # shorter than the checkpoint's offset
    status_3, loaded_3, _, _ = _run(settings, engine)

    assert (status, loaded, quarantined) == (
        "success",
        30,
        0,
    )  # old rows unchanged, new rows loaded
    assert (status_3, loaded_3) == ("success", 5)
    assert rows(engine, "SELECT count(*) FROM price_history") == [(30 + 30 + 5,)]
    assert duplicates(engine) == {}
