"""The sample CSV written when ``KASPARRO_CSV_PATH`` does not exist, clearly labelled as such."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

SAMPLE_BANNER = "# SAMPLE DATA written by Kasparro because KASPARRO_CSV_PATH did not exist. Not market data: replace this file."
SAMPLE_HEADER = [
    "symbol",
    "name",
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "percent_change_24h",
    "rank",
    "last_updated",
]
_SAMPLE_ROWS = [
    ("BTC", "Bitcoin", 65000.0, 1.28e12, 3.1e10, 19_700_000, 19_700_000, 21_000_000, 1.2, 1),
    ("ETH", "Ethereum", 3200.0, 3.85e11, 1.5e10, 120_200_000, 120_200_000, None, -0.8, 2),
    ("USDT", "Tether", 1.0, 1.1e11, 5.0e10, 110_000_000_000, 110_000_000_000, None, 0.01, 3),
    ("BNB", "BNB", 580.0, 8.5e10, 1.8e9, 146_000_000, 146_000_000, 200_000_000, 0.4, 4),
    ("SOL", "Solana", 150.0, 6.9e10, 2.6e9, 460_000_000, 580_000_000, None, 2.3, 5),
    ("XRP", "XRP", 0.52, 2.9e10, 1.1e9, 55_000_000_000, 99_990_000_000, 100_000_000_000, -1.1, 6),
    ("ADA", "Cardano", 0.45, 1.6e10, 4.0e8, 35_000_000_000, 45_000_000_000, 45_000_000_000, 0.7, 7),
    ("DOGE", "Dogecoin", 0.12, 1.7e10, 8.0e8, 144_000_000_000, 144_000_000_000, None, 3.4, 8),
]


def write_sample_csv(path: Path) -> None:
    """Write a small, labelled sample in the unified layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write(SAMPLE_BANNER + "\n")
        writer = csv.writer(handle)
        writer.writerow(SAMPLE_HEADER)
        for row in _SAMPLE_ROWS:
            writer.writerow([*("" if v is None else v for v in row), stamp])
