"""The benchmark's own bookkeeping: memory quarters, merged ingest results, repeated API runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench.instrument import Recorder, instrumented

from bench import api_load, baselines, common, ingest, memory, payloads, report
from kasparro.ingestion import base as base_module

MACHINE = {"cpu": "Xeon", "kernel": "6.18-v1", "cores": 2, "memory_gb": 23.5, "python": "3.11.7",
           "sqlite": "3.40.1", "postgresql": "15"}  # fmt: skip


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
    monkeypatch.setattr(common, "machine", lambda: MACHINE)
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
    assert kept["records_per_s"] == 20  # kept, with the stored run's date and command
    assert kept["date"] == "2026-11-27 11:08 UTC"
    assert kept["command"] == "python -m bench.run_all ingest"
    assert "machine" not in kept  # the file's machine is its last writer's, not this row's
    assert by_key[("csv", "sqlite", 100_000)]["machine"] == MACHINE  # this run's
    assert [r["source"] for r in merged] == ["coingecko", "csv", "csv"]  # sources in bench order


def test_ingest_rows_without_stored_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "machine", lambda: MACHINE)
    row = _row("csv", "sqlite", 10_000, 5, date="d", command="c")
    assert ingest._merged([row]) == [{"machine": MACHINE, **row}]


def test_a_repeated_api_row_is_its_median_p99_run(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = iter([(9900.0, 61.0), (9500.0, 8.0), (9000.0, 12.0)])
    durations: list[float] = []

    def fake_run(url: str, duration: float, connections: int, **_: Any) -> dict[str, Any]:
        durations.append(duration)
        rate, p99 = next(figures)
        return {"requests_per_s": rate, "p50_ms": 6.0, "p99_ms": p99, "errors": 0}

    monkeypatch.setattr(api_load.loadgen, "run", fake_run)
    row = api_load._measure("http://x/data", 2.0, repeats=3)
    assert (row["requests_per_s"], row["p99_ms"]) == (9000.0, 12.0)  # the median-p99 run
    assert api_load._rate(row) == 9500.0  # the ratio to the bare app uses the median rate
    assert all(run["errors"] == 0 for run in row["runs"])
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
    assert api_load._rate(row) == 1.0


def test_the_machine_table_has_a_column_per_machine_named_by_kernel() -> None:
    other = {**MACHINE, "cpu": "EPYC", "kernel": "6.18-v0"}
    ingest_result = {"machine": MACHINE, "rows": [{"machine": other}, {}]}
    text = report.machine_section([ingest_result, {"machine": MACHINE, "api_machine": other}])
    assert "| kernel | 6.18-v0 | 6.18-v1 |" in text  # sorted: the same on every render
    assert "| CPU | EPYC (2 cores visible) | Xeon (2 cores visible) |" in text
    assert "each run names its machine" in text
    assert report._on(other) == " on 6.18-v0"
    assert report._on(None) == ""  # a stored row that never recorded its machine


def test_one_machine_needs_no_caveat() -> None:
    text = report.machine_section([{"machine": MACHINE, "rows": [{"machine": MACHINE}]}])
    assert "| kernel | 6.18-v1 |" in text
    assert "separate instances" not in text


def test_a_run_without_a_p99_shows_a_dash() -> None:
    row = {"p99_ms": 9.0, "runs": [{"p99_ms": None}, {"p99_ms": 9.0}, {"p99_ms": 12.0}]}
    assert report._p99(row) == "9.0 (runs: - / 9.0 / 12.0)"


def test_the_repeated_rows_are_described_from_themselves() -> None:
    rows = [{"runs": [{}, {}, {}], "seconds": 5.0}, {"p99_ms": 1.0}]
    text = report._repeats(rows)
    assert "median p99 of 3 runs of at least 5 s" in text
    assert report._repeats([{"p99_ms": 1.0}]) == ""


def test_a_memory_run_keeps_the_api_figures_with_their_own_date_and_machine() -> None:
    previous = {
        "csv_runs": [{"db": "sqlite", "file_mb": 50.1, "peak_mb": 160.0}],
        "api": {"sqlite/1w": {"peak_mb": 105.4}},
        "api_date": "2026-11-27 14:36 UTC",
        "api_machine": MACHINE,
    }
    run = {"db": "sqlite", "file_mb": 1024.1, "peak_mb": 161.2, "command": "memory --full"}
    result = memory.with_run(previous, run)
    assert [r["file_mb"] for r in result["csv_runs"]] == [50.1, 1024.1]
    assert (result["api_date"], result["api_machine"]) == ("2026-11-27 14:36 UTC", MACHINE)
    assert result["api"] == previous["api"]


def test_the_ceiling_loads_every_row_a_first_load_wrote(db_url: str) -> None:
    """An instrumented run captures the assets and source mappings it created along with raw,
    unified and history rows, so the ceiling (b) loads the same rows Kasparro wrote."""
    records = payloads.payloads("coinpaprika", payloads.world(40))
    recorder = Recorder(capture=True)
    with instrumented(recorder):
        _, result = ingest.run_once("coinpaprika", db_url, records)
    assert result.loaded == 40
    counts = {table: len(rows) for table, (_, rows) in recorder.rows.items()}
    assert counts == {
        "asset": 40, "asset_source": 40, "raw_coinpaprika": 40, "unified_crypto": 40,
        "price_history": 40,
    }  # fmt: skip
    columns = recorder.rows["asset_source"][0]
    assert columns[:3] == ("asset_id", "source", "coin_id")


def test_the_floor_reads_and_hashes_every_csv_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(d) parses each row and turns its numeric cells into numbers: a cell that is not one stops
    it, so the floor cannot skip the numbers it claims to read."""
    good = tmp_path / "good.csv"
    good.write_text("SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n"
                    "1,Bitcoin,BTC,2024-01-01,2,1,1.5,1.8,100,1000\n")  # fmt: skip
    assert baselines.read_and_hash(good) > 0
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text().replace("1.8", "n/a"))
    with pytest.raises(ValueError, match="could not convert"):
        baselines.read_and_hash(bad)
    hashed: list[bytes] = []
    monkeypatch.setattr(
        base_module.hashlib, "blake2b", lambda blob, **_: hashed.append(blob) or _Digest()
    )
    baselines.read_and_hash([{"b": 1, "a": 2}, {"id": "x"}])
    assert hashed == [b'{"a":2,"b":1}', b'{"id":"x"}']  # canonical JSON, sorted keys


class _Digest:
    def hexdigest(self) -> str:
        return "0" * 32
