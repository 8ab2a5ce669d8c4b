"""Source models and mappers: sentinels, nulls, number shapes, CSV cells, recorded payloads."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.exceptions import RecordValidationError
from kasparro.ingestion.coingecko import CoinGeckoIngestion
from kasparro.ingestion.coinpaprika import CoinPaprikaIngestion
from kasparro.ingestion.csv_source import CsvIngestion, normalize_header
from kasparro.schemas.coingecko import GeckoMarket
from kasparro.schemas.coinpaprika import PaprikaTicker
from kasparro.schemas.csv import CsvRow
from tests.conftest import RECORDED_DIR
from tests.ingestion.payloads import GECKO_BTC, PAPRIKA_BTC


def paprika(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(PAPRIKA_BTC)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def paprika_quote(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(PAPRIKA_BTC)
    data["quotes"]["USD"].update(changes)
    return data


def gecko(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GECKO_BTC)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


# --- CoinPaprika ------------------------------------------------------------------------------

# (payload, attribute, expected)
PAPRIKA_OK: list[tuple[dict[str, Any], str, Any]] = [
    (paprika(circulating_supply=0), "circulating_supply", None),
    (paprika(total_supply=0), "total_supply", None),
    (paprika(max_supply=0), "max_supply", None),
    (paprika(max_supply=0.0), "max_supply", None),
    (paprika(circulating_supply=...), "circulating_supply", None),
    (paprika(max_supply=None), "max_supply", None),
    (paprika(circulating_supply=19453956), "circulating_supply", 19453956.0),
    (paprika(circulating_supply=1.5), "circulating_supply", 1.5),
    (paprika(first_data_at=...), "first_data_at", None),
    (paprika(rank=0), "rank", 0),
    (paprika(last_updated="2023-08-11T08:09:18Z"), "last_updated", datetime(2023, 8, 11, 8, 9, 18, tzinfo=UTC)),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "attribute", "expected"), PAPRIKA_OK)
def test_paprika_ticker_accepts(payload: dict[str, Any], attribute: str, expected: Any) -> None:
    assert getattr(PaprikaTicker.model_validate(payload), attribute) == expected


# (quote changes, attribute, expected)
PAPRIKA_QUOTE_OK: list[tuple[dict[str, Any], str, Any]] = [
    ({"ath_price": None, "ath_date": None, "percent_from_price_ath": None}, "ath_price", None),
    ({"ath_date": None}, "ath_date", None),
    ({"price": 1}, "price", 1.0),
    ({"price": 0.000123}, "price", 0.000123),
    ({"market_cap": 572489440087}, "market_cap", 572489440087.0),
    ({"percent_change_24h": -3}, "percent_change_24h", -3.0),
    ({"percent_change_15m": None}, "percent_change_15m", None),
    ({"unknown_new_field": 5}, "price", 29427.918932650417),
]


@pytest.mark.parametrize(("changes", "attribute", "expected"), PAPRIKA_QUOTE_OK)
def test_paprika_quote_accepts(changes: dict[str, Any], attribute: str, expected: Any) -> None:
    ticker = PaprikaTicker.model_validate(paprika_quote(**changes))
    assert getattr(ticker.quotes["USD"], attribute) == expected


PAPRIKA_BAD: list[tuple[str, dict[str, Any]]] = [
    ("negative price", paprika_quote(price=-1)),
    ("nan price", paprika_quote(price=float("nan"))),
    ("inf market cap", paprika_quote(market_cap=float("inf"))),
    ("NaN string", paprika_quote(price="NaN")),
    ("Infinity string", paprika_quote(volume_24h="Infinity")),
    ("negative supply", paprika(total_supply=-5)),
    ("inf supply", paprika(max_supply=float("inf"))),
    ("missing id", paprika(id=...)),
    ("empty symbol", paprika(symbol="")),
    ("missing name", paprika(name=...)),
    ("quotes not an object", paprika(quotes=[1, 2])),
    ("bad date", paprika(last_updated="yesterday")),
]


@pytest.mark.parametrize(("label", "payload"), PAPRIKA_BAD, ids=[c[0] for c in PAPRIKA_BAD])
def test_paprika_ticker_rejects(label: str, payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PaprikaTicker.model_validate(payload)


# --- CoinGecko --------------------------------------------------------------------------------

GECKO_NUMERIC = [
    name
    for name, info in GeckoMarket.model_fields.items()
    if name not in ("id", "symbol", "name", "image", "ath_date", "atl_date", "roi", "last_updated")
]


def test_gecko_market_accepts_null_in_every_optional_field() -> None:
    payload = dict.fromkeys(GeckoMarket.model_fields)
    payload.update(id="bitcoin", symbol="btc", name="Bitcoin")
    market = GeckoMarket.model_validate(payload)
    assert all(getattr(market, name) is None for name in GECKO_NUMERIC)
    assert market.roi is None
    assert market.last_updated is None


# (field, value, expected)
GECKO_OK: list[tuple[str, Any, Any]] = [
    ("current_price", 16730, 16730.0),
    ("current_price", 16730.75, 16730.75),
    ("current_price", 0, 0.0),
    ("market_cap", 322053364166, 322053364166.0),
    ("total_volume", 1.2e10, 1.2e10),
    ("max_supply", None, None),
    ("market_cap_rank", None, None),
    ("market_cap_rank", 7, 7),
    ("price_change_percentage_24h", -12, -12.0),
    ("symbol", "usdt", "usdt"),
    ("symbol", "  btc ", "btc"),
    ("last_updated", "2023-01-02T17:08:13.102Z", datetime(2023, 1, 2, 17, 8, 13, 102000, tzinfo=UTC)),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "expected"), GECKO_OK)
def test_gecko_market_accepts(field: str, value: Any, expected: Any) -> None:
    assert getattr(GeckoMarket.model_validate(gecko(**{field: value})), field) == expected


@pytest.mark.parametrize(
    ("roi", "expected_times"),
    [
        (None, None),
        ({"times": 3.5, "currency": "btc", "percentage": 350.0}, 3.5),
        ({"times": 81, "currency": "usd", "percentage": 8100}, 81.0),
        ({"times": None, "currency": None, "percentage": None}, None),
    ],
)
def test_gecko_roi_is_null_or_an_object(roi: Any, expected_times: Any) -> None:
    market = GeckoMarket.model_validate(gecko(roi=roi))
    if roi is None:
        assert market.roi is None
    else:
        assert market.roi is not None
        assert market.roi.times == expected_times


GECKO_BAD: list[tuple[str, dict[str, Any]]] = [
    ("negative price", gecko(current_price=-0.01)),
    ("negative market cap", gecko(market_cap=-1)),
    ("nan price", gecko(current_price=float("nan"))),
    ("inf volume", gecko(total_volume=float("inf"))),
    ("-inf change", gecko(price_change_24h=float("-inf"))),
    ("NaN string", gecko(current_price="NaN")),
    ("non-numeric price", gecko(current_price="abc")),
    ("roi is a string", gecko(roi="none")),
    ("missing id", gecko(id=...)),
    ("empty name", gecko(name="")),
]


@pytest.mark.parametrize(("label", "payload"), GECKO_BAD, ids=[c[0] for c in GECKO_BAD])
def test_gecko_market_rejects(label: str, payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GeckoMarket.model_validate(payload)


# --- CSV rows ---------------------------------------------------------------------------------

CSV_BASE = {"symbol": "BTC", "name": "Bitcoin", "price_usd": "65000.5"}

# (cells, attribute, expected)
CSV_OK: list[tuple[dict[str, Any], str, Any]] = [
    ({}, "price_usd", 65000.5),
    ({"market_cap_usd": ""}, "market_cap_usd", None),
    ({"market_cap_usd": "NaN"}, "market_cap_usd", None),
    ({"market_cap_usd": "nan"}, "market_cap_usd", None),
    ({"market_cap_usd": "null"}, "market_cap_usd", None),
    ({"market_cap_usd": "N/A"}, "market_cap_usd", None),
    ({"market_cap_usd": " 1.5e12 "}, "market_cap_usd", 1.5e12),
    ({"volume_24h_usd": "1_000"}, "volume_24h_usd", 1000.0),
    ({"percent_change_24h": "-2.5"}, "percent_change_24h", -2.5),
    ({"rank": "3"}, "rank", 3.0),
    ({"rank": ""}, "rank", None),
    ({"last_updated": "2021-07-06 23:59:59"}, "last_updated", datetime(2021, 7, 6, 23, 59, 59)),
]


@pytest.mark.parametrize(("cells", "attribute", "expected"), CSV_OK)
def test_csv_row_cells(cells: dict[str, Any], attribute: str, expected: Any) -> None:
    assert getattr(CsvRow.model_validate({**CSV_BASE, **cells}), attribute) == expected


CSV_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("non-numeric market cap", {"market_cap_usd": "abc"}, "market_cap_usd"),
    ("inf market cap", {"market_cap_usd": "inf"}, "market_cap_usd"),
    ("-Infinity change", {"percent_change_24h": "-Infinity"}, "percent_change_24h"),
    ("NaN price", {"price_usd": "NaN"}, "price_usd"),
    ("empty price", {"price_usd": ""}, "price_usd"),
    ("missing price", {"price_usd": None}, "price_usd"),
    ("negative price", {"price_usd": "-1"}, "price_usd"),
    ("inf price", {"price_usd": "inf"}, "price_usd"),
    ("thousands separator", {"price_usd": "65,000"}, "price_usd"),
    ("empty symbol", {"symbol": ""}, "symbol"),
]


@pytest.mark.parametrize(("label", "cells", "field"), CSV_BAD, ids=[c[0] for c in CSV_BAD])
def test_csv_row_rejects(label: str, cells: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CsvRow.model_validate({**CSV_BASE, **cells})
    assert field in {str(e["loc"][0]) for e in caught.value.errors()}


# --- mappers ----------------------------------------------------------------------------------


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def paprika_source(settings: Settings, engine: Engine) -> Iterator[CoinPaprikaIngestion]:
    source = CoinPaprikaIngestion(settings, engine)
    yield source
    source.close()


@pytest.fixture
def gecko_source(settings: Settings, engine: Engine) -> Iterator[CoinGeckoIngestion]:
    source = CoinGeckoIngestion(settings, engine)
    yield source
    source.close()


@pytest.fixture
def csv_source(settings: Settings, engine: Engine) -> CsvIngestion:
    return CsvIngestion(settings, engine)


def test_paprika_maps_to_unified(paprika_source: CoinPaprikaIngestion) -> None:
    record = paprika_source.to_unified(
        PaprikaTicker.model_validate(paprika(symbol="btc", max_supply=0))
    )
    assert (record.coin_id, record.symbol, record.name, record.rank) == (
        "btc-bitcoin",
        "BTC",
        "Bitcoin",
        1,
    )
    assert record.price_usd == pytest.approx(29427.918932650417)
    assert record.market_cap_usd == 572489440087.0
    assert record.volume_24h_usd == pytest.approx(17385954206.667908)
    assert record.circulating_supply == 19453956.0
    assert record.max_supply is None
    assert record.percent_change_24h == -0.26
    assert record.source_updated_at == datetime(2023, 8, 11, 8, 9, 18, tzinfo=UTC)


@pytest.mark.parametrize(
    ("quotes", "message"),
    [({}, "no USD quote"), ({"KRW": {"price": 1000}}, "KRW")],
)
def test_paprika_without_usd_quote_is_a_record_error(
    paprika_source: CoinPaprikaIngestion, quotes: dict[str, Any], message: str
) -> None:
    ticker = PaprikaTicker.model_validate(paprika(quotes=quotes))
    with pytest.raises(RecordValidationError, match=message):
        paprika_source.to_unified(ticker)


def test_paprika_rank_zero_maps_to_null(paprika_source: CoinPaprikaIngestion) -> None:
    assert paprika_source.to_unified(PaprikaTicker.model_validate(paprika(rank=0))).rank is None


def test_gecko_maps_to_unified(gecko_source: CoinGeckoIngestion) -> None:
    record = gecko_source.to_unified(GeckoMarket.model_validate(gecko()))
    assert (record.coin_id, record.symbol, record.name, record.rank) == (
        "bitcoin",
        "BTC",
        "Bitcoin",
        1,
    )
    assert record.price_usd == 16730.75
    assert record.market_cap_usd == 322053364166.0
    assert record.volume_24h_usd == 12892500366.0
    assert record.total_supply == 21000000.0
    assert record.percent_change_24h == 0.96122
    assert record.source_updated_at == datetime(2023, 1, 2, 17, 8, 13, 102000, tzinfo=UTC)


def test_gecko_all_null_maps_to_nulls(gecko_source: CoinGeckoIngestion) -> None:
    payload = dict.fromkeys(GeckoMarket.model_fields)
    payload.update(id="tether", symbol="usdt", name="Tether")
    record = gecko_source.to_unified(GeckoMarket.model_validate(payload))
    assert record.symbol == "USDT"
    assert record.price_usd is None
    assert record.rank is None
    assert record.source_updated_at is None


# (raw header, canonical name)
HEADERS = [
    ("\ufeffSNo", "row_number"),
    ("Name", "name"),
    ("Symbol", "symbol"),
    ("Date", "last_updated"),
    ("High", "high_usd"),
    ("Low", "low_usd"),
    ("Open", "open_usd"),
    ("Close", "price_usd"),
    ("Volume", "volume_24h_usd"),
    ("Marketcap", "market_cap_usd"),
    ("Market Cap", "market_cap_usd"),
    ("market-cap-usd", "market_cap_usd"),
    ("  PRICE_USD ", "price_usd"),
    ("Ticker", "symbol"),
    ("Exchange", "exchange"),
]


@pytest.mark.parametrize(("header", "canonical"), HEADERS)
def test_csv_header_aliases(header: str, canonical: str) -> None:
    assert normalize_header(header) == canonical


KAGGLE_ROW = {
    "\ufeffSNo": "1",
    "Name": "Solana",
    "Symbol": "SOL",
    "Date": "2020-04-11 23:59:59",
    "High": "1.04907270025",
    "Low": "0.765020356128",
    "Open": "0.95105395758",
    "Close": "0.776818582977",
    "Volume": "43862443.7931816",
    "Marketcap": "0.0",
}


def test_csv_normalize_and_map_the_history_layout(csv_source: CsvIngestion) -> None:
    data = csv_source.normalize(KAGGLE_ROW)
    assert data["row_number"] == "1"
    # plainly written numbers are converted once here; odd spellings are left to the model
    assert data["market_cap_usd"] == 0.0
    assert data["price_usd"] == 0.776818582977
    assert csv_source.normalize({**KAGGLE_ROW, "Close": " 1_000 "})["price_usd"] == 1000.0
    assert csv_source.normalize({**KAGGLE_ROW, "Close": "12 USD"})["price_usd"] == "12 USD"
    assert csv_source.normalize({**KAGGLE_ROW, "Close": "inf"})["price_usd"] == "inf"
    assert csv_source.normalize({**KAGGLE_ROW, "Close": " N/A "})["price_usd"] is None
    assert csv_source.normalize({**KAGGLE_ROW, "Name": "  "})["name"] is None
    assert data["circulating_supply"] is None  # absent optional columns become null
    record = csv_source.to_unified(CsvRow.model_validate(data))
    assert record.coin_id == "sol-solana"
    assert (record.symbol, record.name) == ("SOL", "Solana")
    assert record.price_usd == pytest.approx(0.776818582977)
    assert record.market_cap_usd is None  # 0 market cap means unknown
    assert record.open_usd == pytest.approx(0.95105395758)
    assert record.high_usd == pytest.approx(1.04907270025)
    assert record.low_usd == pytest.approx(0.765020356128)
    assert record.source_updated_at == datetime(2020, 4, 11, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cells", "attribute", "expected"),
    [
        ({"market_cap_usd": "NaN"}, "market_cap_usd", None),
        ({"market_cap_usd": ""}, "market_cap_usd", None),
        ({"market_cap_usd": "12.5"}, "market_cap_usd", 12.5),
        ({"coin_id": "btc-bitcoin"}, "coin_id", "btc-bitcoin"),
        ({"symbol": "btc"}, "coin_id", "btc-bitcoin"),
        ({"name": "Bit Coin!"}, "coin_id", "btc-bitcoin"),
        ({"rank": "4"}, "rank", 4),
        ({"last_updated": "2024-05-01T12:00:00+02:00"}, "source_updated_at", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_csv_unified_layout_maps(
    csv_source: CsvIngestion, cells: dict[str, str], attribute: str, expected: Any
) -> None:
    row = {"symbol": "BTC", "name": "Bitcoin", "price_usd": "65000", **cells}
    record = csv_source.to_unified(CsvRow.model_validate(csv_source.normalize(row)))
    assert getattr(record, attribute) == expected


def test_csv_row_without_a_date_gets_an_aware_default(csv_source: CsvIngestion) -> None:
    row = {"symbol": "BTC", "name": "Bitcoin", "price_usd": "1"}
    record = csv_source.to_unified(CsvRow.model_validate(csv_source.normalize(row)))
    assert record.source_updated_at is not None
    assert record.source_updated_at.tzinfo is not None


# --- recorded payloads ------------------------------------------------------------------------


def _recorded(pattern: str) -> list[Path]:
    if not RECORDED_DIR.is_dir():
        pytest.skip(f"{RECORDED_DIR} is absent")
    files = sorted(p for p in RECORDED_DIR.glob(pattern) if not p.name.endswith("_meta.json"))
    if not files:
        pytest.skip(f"no {pattern} in {RECORDED_DIR}")
    return files


def test_recorded_coingecko_rows_validate_and_map(gecko_source: CoinGeckoIngestion) -> None:
    total = 0
    for path in _recorded("coingecko_markets_*.json"):
        rows = json.loads(path.read_bytes())
        assert isinstance(rows, list), path.name
        for row in rows:
            record = gecko_source.to_unified(GeckoMarket.model_validate(row))
            assert record.coin_id == row["id"]
            assert record.symbol == row["symbol"].strip().upper()
            assert record.price_usd is None or math.isfinite(record.price_usd)
            total += 1
    assert total == 5 + 100 + 3 + 30 + 250


def test_recorded_coinpaprika_tickers_validate_and_map(
    paprika_source: CoinPaprikaIngestion,
) -> None:
    without_usd: dict[str, int] = {}
    mapped: dict[str, int] = {}
    for path in _recorded("coinpaprika_tickers_*.json"):
        rows = json.loads(path.read_bytes())
        for row in rows:
            ticker = PaprikaTicker.model_validate(row)
            try:
                record = paprika_source.to_unified(ticker)
            except RecordValidationError:
                without_usd[path.name] = without_usd.get(path.name, 0) + 1
                continue
            assert record.coin_id == row["id"]
            mapped[path.name] = mapped.get(path.name, 0) + 1
    by_kind = {("krw" if "_krw" in name else "usd"): n for name, n in without_usd.items()}
    assert by_kind == {"krw": 2500}
    assert sorted(mapped.values()) == [2500, 2620]
