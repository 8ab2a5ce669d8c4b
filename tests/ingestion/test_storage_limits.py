"""A record whose mapped values the database columns cannot hold is quarantined with its reason;
the rest of its batch loads. Found by tests/reliability/test_fuzz.py: each case below used to fail
the whole run (PostgreSQL: value too long / integer out of range; SQLite: OverflowError)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.models import Asset, UnifiedCrypto
from kasparro.ingestion.base import BaseIngestion, FetchedBatch
from kasparro.ingestion.coingecko import CoinGeckoIngestion
from kasparro.ingestion.coinpaprika import CoinPaprikaIngestion
from kasparro.pipeline.runner import run_pass
from kasparro.schemas.unified import MATCH_KEY_MAX, RANK_MAX, SYMBOL_MAX, TEXT_MAX
from tests.conftest import count_rows
from tests.ingestion.payloads import GECKO_BTC, PAPRIKA_BTC

GECKO_ETH = {**GECKO_BTC, "id": "ethereum", "symbol": "eth", "name": "Ethereum"}
PAPRIKA_ETH = {**PAPRIKA_BTC, "id": "eth-ethereum", "symbol": "ETH", "name": "Ethereum"}
SOURCES: dict[str, tuple[type[BaseIngestion], dict[str, Any]]] = {
    "coingecko": (CoinGeckoIngestion, GECKO_ETH),
    "coinpaprika": (CoinPaprikaIngestion, PAPRIKA_ETH),
}

# (source, fields changed on a valid record, reason fragment)
API_CASES = [
    ("coingecko", {"symbol": "ß" * 64}, "symbol is longer"),  # upper-cased: "SS" * 64
    ("coingecko", {"name": "㍱" * 255}, "match key"),  # NFKD: "hPa" * 255
    ("coingecko", {"market_cap_rank": 2**31}, "rank 2147483648 is out"),  # PostgreSQL INTEGER
    ("coinpaprika", {"rank": 2**63}, "is out of range"),  # SQLite INTEGER as well
    ("coinpaprika", {"symbol": "ŉ" * 64}, "symbol is longer"),  # upper-cased: two characters each
]


def _fed(source: str, payloads: list[Any]) -> type[BaseIngestion]:
    base, _ = SOURCES[source]

    class Fed(base):  # type: ignore[valid-type, misc]
        def fetch(self, checkpoint: object) -> Iterator[FetchedBatch]:
            yield FetchedBatch(payloads)

    return Fed


@pytest.mark.parametrize(("source", "changes", "reason"), API_CASES)
def test_an_api_record_the_columns_cannot_hold_is_quarantined(
    make_settings: Callable[..., Settings],
    engine: Engine,
    source: str,
    changes: dict[str, Any],
    reason: str,
) -> None:
    good = SOURCES[source][1]
    result = _fed(source, [{**good, **changes}, good])(make_settings(), engine).run()

    assert (result.status, result.loaded, result.quarantined) == ("partial", 1, 1), result
    with engine.connect() as conn:
        (stored,) = conn.execute(sa.text("SELECT reason FROM quarantine")).scalars()
    assert reason in stored


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("BTC,Bitcoin,1,,,,,,,1e30,2024-01-01T00:00:00Z", "is out of range"),
        ("BTC,Bitcoin,1,,,,,,,1_000_000_000_000,2024-01-01T00:00:00Z", "rank 1000000000000 is out"),
        (f"{'a' * 64},{'b' * 255},1,,,,,,,1,2024-01-01T00:00:00Z", "coin id is longer"),
        (f"{'ŉ' * 64},Bitcoin,1,,,,,,,1,2024-01-01T00:00:00Z", "symbol is longer"),
    ],
    ids=["rank-1e30", "rank-underscored", "derived-coin-id", "symbol-upper-cased"],
)
def test_a_csv_row_the_columns_cannot_hold_is_quarantined(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path, row: str, reason: str
) -> None:
    path = tmp_path / "limits.csv"
    header = "symbol,name,price_usd,market_cap_usd,volume_24h_usd,circulating_supply,total_supply,max_supply,percent_change_24h,rank,last_updated"
    good = "ETH,Ethereum,2,,,,,,,2,2024-01-01T00:00:00Z"
    path.write_text(f"{header}\n{row}\n{good}\n", encoding="utf-8")
    (result,) = run_pass(make_settings(csv_path=path), engine, sources=["csv"])

    assert (result.status, result.loaded, result.quarantined) == ("partial", 1, 1), result
    with engine.connect() as conn:
        (stored,) = conn.execute(sa.text("SELECT reason FROM quarantine")).scalars()
    assert reason in stored
    assert count_rows(engine, "unified_crypto") == 1


def test_the_limits_are_the_columns_sizes() -> None:
    unified = UnifiedCrypto.__table__.c  # type: ignore[attr-defined]
    assert (unified.symbol.type.length, unified.coin_id.type.length, unified.name.type.length) == (
        SYMBOL_MAX,
        TEXT_MAX,
        TEXT_MAX,
    )
    assert Asset.__table__.c.match_key.type.length == MATCH_KEY_MAX  # type: ignore[attr-defined]
    assert isinstance(unified.rank.type, sa.Integer)
    assert not isinstance(unified.rank.type, sa.BigInteger)
    assert RANK_MAX == 2**31 - 1  # PostgreSQL's INTEGER, the narrower of the two databases
