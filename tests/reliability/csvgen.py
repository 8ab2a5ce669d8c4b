"""Growing CSV files in the unified layout (every row a distinct (coin, last_updated) observation),
and the reconciliation every fault case of the reliability suite ends with."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from kasparro.ingestion.base import RunResult
from kasparro.pipeline.verify import verify
from tests.fakes import WorldCoin
from tests.fakes.data import UNIFIED_HEADER
from tests.reliability.helpers import scalar

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def csv_row(coin: WorldCoin, index: int) -> list[str]:
    """Row ``index`` (a global counter): its timestamp is unique per coin."""
    stamp = BASE_TIME + timedelta(minutes=index)
    price = coin.price * (1 + (index % 97) / 1000)
    return [
        coin.symbol, coin.name, repr(price), repr(price * 1000), repr(coin.volume_24h), "", "", "",
        "0.5", str(coin.rank), stamp.isoformat().replace("+00:00", "Z"),
    ]  # fmt: skip


def append_rows(
    path: Path,
    coins: list[WorldCoin],
    start: int,
    count: int,
    *,
    header: Sequence[str] = UNIFIED_HEADER,
    renamed: Mapping[str, str] | None = None,
) -> int:
    """Append rows ``start .. start+count`` (writing ``header`` into a new file); returns the next
    index. A drifted ``header`` drops, adds or renames columns: a column ``renamed`` maps to a
    unified one carries that column's values, any other new column a value of its own."""
    new = not path.exists()
    renamed = renamed or {}
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(header)
        for index in range(start, start + count):
            row = dict(zip(UNIFIED_HEADER, csv_row(coins[index % len(coins)], index), strict=True))
            writer.writerow([row.get(renamed.get(c, c), f"{c}-{index}") for c in header])
    return start + count


def reconcile(engine: Engine, result: RunResult, *, served: int) -> None:
    """The run's counters add up to what the upstream served, the database holds exactly what
    they say for this run (raw payloads = loaded, quarantine rows = quarantined, history points
    at most one per loaded record), and ``kasparro db verify`` passes."""
    assert result.status in ("success", "partial"), result
    assert (result.fetched, result.loaded + result.unchanged + result.quarantined) == (
        served,
        served,
    ), result
    stored = {
        table: scalar(engine, f"SELECT count(*) FROM {table} WHERE run_id = :r", r=result.run_id)
        for table in (f"raw_{result.source}", "quarantine", "price_history")
    }
    assert stored[f"raw_{result.source}"] == result.loaded, (stored, result)
    assert stored["quarantine"] == result.quarantined, (stored, result)
    assert stored["price_history"] <= result.loaded, (stored, result)
    report = verify(engine)
    assert report.ok, report.problems
