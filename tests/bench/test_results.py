"""The benchmark's own bookkeeping: memory quarters and merged ingest results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import common, ingest, memory


def test_quarter_peaks_cover_the_last_samples() -> None:
    values = [1] * 12 + [9, 7]  # 14 samples: not a multiple of 4, and the peak in the last two
    assert memory.quarter_peaks(values) == [1, 1, 1, 9]


def test_quarter_peaks_of_fewer_samples_than_quarters() -> None:
    assert memory.quarter_peaks([5, 3]) == [0, 5, 0, 3]
    assert memory.quarter_peaks([]) == [0, 0, 0, 0]


def _row(source: str, db: str, records: int, rate: int, **extra: Any) -> dict[str, Any]:
    return {"source": source, "db": db, "records": records, "present_pct": 0,
            "records_per_s": rate, **extra}  # fmt: skip


def test_ingest_rows_merge_by_source_db_size_and_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    stored = {
        "date": "2026-11-27 11:08 UTC",
        "command": "python -m bench.run_all ingest",
        "rows": [_row("csv", "sqlite", 100_000, 10), _row("coingecko", "sqlite", 100_000, 20)],
    }
    (tmp_path / "ingest.json").write_text(json.dumps(stored))
    new = _row("csv", "sqlite", 100_000, 30, date="2026-11-27 13:00 UTC", command="one run")
    bigger = _row("csv", "postgres", 1_000_000, 40, date="2026-11-27 13:05 UTC", command="one run")

    merged = ingest._merged([new, bigger])

    by_key = {(r["source"], r["db"], r["records"]): r for r in merged}
    assert len(merged) == 3
    assert by_key[("csv", "sqlite", 100_000)]["records_per_s"] == 30  # replaced by the new run
    kept = by_key[("coingecko", "sqlite", 100_000)]
    assert kept["records_per_s"] == 20  # kept, with the stored run's date and command
    assert kept["date"] == "2026-11-27 11:08 UTC"
    assert kept["command"] == "python -m bench.run_all ingest"
    assert [r["source"] for r in merged] == ["coingecko", "csv", "csv"]  # sources in bench order


def test_ingest_rows_without_stored_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    row = _row("csv", "sqlite", 10_000, 5, date="d", command="c")
    assert ingest._merged([row]) == [row]
