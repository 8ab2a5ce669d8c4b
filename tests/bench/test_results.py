"""The benchmark's own bookkeeping: memory quarters, merged ingest results, repeated API runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import api_load, common, ingest, memory, report


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
        "machine": {"cpu": "old", "kernel": "k1"},
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
    assert kept["records_per_s"] == 20  # kept, with the stored run's date, command and machine
    assert kept["date"] == "2026-11-27 11:08 UTC"
    assert kept["command"] == "python -m bench.run_all ingest"
    assert kept["machine"] == {"cpu": "old", "kernel": "k1"}
    assert by_key[("csv", "sqlite", 100_000)]["machine"] == common.machine()  # this run's
    assert [r["source"] for r in merged] == ["coingecko", "csv", "csv"]  # sources in bench order


def test_ingest_rows_without_stored_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    row = _row("csv", "sqlite", 10_000, 5, date="d", command="c")
    assert ingest._merged([row]) == [{"machine": common.machine(), **row}]


def test_a_repeated_api_row_is_its_median_p99_run(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = iter([(9000.0, 61.0), (9500.0, 8.0), (9300.0, 12.0)])
    durations: list[float] = []

    def fake_run(url: str, duration: float, connections: int, **_: Any) -> dict[str, Any]:
        durations.append(duration)
        rate, p99 = next(figures)
        return {"requests_per_s": rate, "p50_ms": 6.0, "p99_ms": p99, "errors": 0}

    monkeypatch.setattr(api_load.loadgen, "run", fake_run)
    row = api_load._measure("http://x/data", 2.0, repeats=3)
    assert (row["requests_per_s"], row["p99_ms"]) == (9300.0, 12.0)
    assert [run["p99_ms"] for run in row["runs"]] == [61.0, 8.0, 12.0]  # in run order
    assert durations == [api_load.HEADLINE_MIN_S] * 3
    assert report._p99(row) == "12.0 (runs: 61.0 / 8.0 / 12.0)"


def test_an_api_row_measured_once_has_no_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(url: str, duration: float, connections: int, **_: Any) -> dict[str, Any]:
        return {"requests_per_s": 1.0, "p50_ms": 1.0, "p99_ms": 3.5, "errors": 0}

    monkeypatch.setattr(api_load.loadgen, "run", fake_run)
    row = api_load._measure("http://x/data", 2.0)
    assert "runs" not in row
    assert report._p99(row) == "3.5"


def test_the_machine_table_labels_each_machine_and_runs_name_theirs() -> None:
    a = {"cpu": "Xeon", "kernel": "v1", "cores": 2, "memory_gb": 23.5, "python": "3.11.7",
         "sqlite": "3.40.1", "postgresql": "15"}  # fmt: skip
    b = {**a, "cpu": "EPYC", "kernel": "v2"}
    ingest_result = {"machine": b, "rows": [{"machine": a}, {"machine": b}]}
    text = report.machine_section([ingest_result, {"machine": b, "api_machine": a}])
    assert "| machine A | machine B |" in text  # in order of first appearance
    assert "| CPU | EPYC (2 cores visible) | Xeon (2 cores visible) |" in text
    assert (report._on(b), report._on(a)) == (" on machine A", " on machine B")
    report.machine_section([{"machine": a}])  # one machine: runs do not name it
    assert report._on(a) == ""
