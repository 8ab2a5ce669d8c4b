"""Growing CSV files in the unified layout: every row a distinct (coin, last_updated) observation."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakes import WorldCoin
from tests.fakes.data import UNIFIED_HEADER

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def csv_row(coin: WorldCoin, index: int) -> list[str]:
    """Row ``index`` (a global counter): its timestamp is unique per coin."""
    stamp = BASE_TIME + timedelta(minutes=index)
    price = coin.price * (1 + (index % 97) / 1000)
    return [
        coin.symbol, coin.name, repr(price), repr(price * 1000), repr(coin.volume_24h), "", "", "",
        "0.5", str(coin.rank), stamp.isoformat().replace("+00:00", "Z"),
    ]  # fmt: skip


def append_rows(path: Path, coins: list[WorldCoin], start: int, count: int) -> int:
    """Append rows ``start .. start+count`` (writing the header into a new file); returns the next index."""
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(UNIFIED_HEADER)
        for index in range(start, start + count):
            writer.writerow(csv_row(coins[index % len(coins)], index))
    return start + count
