"""Bench data: N distinct coins rendered as each source's real payloads, and history CSV files."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes import WorldCoin, coingecko_market, coinpaprika_ticker, coins, write_history_csv
from tests.fakes.data import DEFAULT_UPDATED_AT

TEMPLATE_SIZE = 1000
LATER = DEFAULT_UPDATED_AT
EARLIER = DEFAULT_UPDATED_AT - timedelta(minutes=10)


def world(n: int, updated_at: datetime = LATER) -> list[WorldCoin]:
    """``n`` distinct coins: the fakes' seeded 1,000-coin world, repeated with suffixed ids.

    ``tests.fakes.coins(n)`` is quadratic in ``n`` (it checks symbols against a list), so the
    bench reuses its first 1,000 coins as templates; ids, symbols and names stay unique.
    """
    template = coins(min(n, TEMPLATE_SIZE), updated_at=updated_at)
    out: list[WorldCoin] = []
    for k in range(n):
        coin = template[k % len(template)]
        cycle = k // len(template)
        if cycle:
            coin = replace(
                coin,
                gecko_id=f"{coin.gecko_id}-{cycle}",
                paprika_id=f"{coin.paprika_id}-{cycle}",
                symbol=f"{coin.symbol}{cycle}",
                name=f"{coin.name} {cycle}",
                rank=k + 1,
            )
        out.append(coin)
    return out


def payloads(source: str, world_coins: list[WorldCoin]) -> list[dict[str, Any]]:
    if source == "coingecko":
        return [coingecko_market(c) for c in world_coins]
    if source == "coinpaprika":
        return [coinpaprika_ticker(c) for c in world_coins]
    raise ValueError(source)


def history_csv(path: Path, rows: int, *, every_other: bool = False) -> int:
    """A Kaggle-layout history CSV of about ``rows`` rows (1,000 coins x rows/1,000 days).

    ``every_other`` keeps every second data row of the same file: half of it "already present".
    """
    n_coins = min(TEMPLATE_SIZE, rows)
    days = max(1, rows // n_coins)
    written = write_history_csv(path, world(n_coins), days, layout="kaggle")
    if not every_other:
        return written
    kept = 0
    half = path.with_suffix(".half.csv")
    with path.open(newline="", encoding="utf-8") as src, half.open("w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for index, row in enumerate(reader):
            if index % 2 == 0:
                writer.writerow(row)
                kept += 1
    half.replace(path)
    return kept
