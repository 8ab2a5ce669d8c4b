"""Schema drift: expected shapes come from the models; each distinct change is reported once."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kasparro.ingestion.drift import DriftDetector, DriftEvent, expected_schema
from kasparro.schemas.coingecko import GeckoMarket
from kasparro.schemas.coinpaprika import PaprikaTicker
from kasparro.schemas.csv import CsvRow
from tests.conftest import RECORDED_DIR
from tests.ingestion.payloads import GECKO_BTC, PAPRIKA_BTC

# (model, field, json types, required)
SCHEMA_CASES: list[tuple[type[Any], str, set[str], bool]] = [
    (GeckoMarket, "id", {"string"}, True),
    (GeckoMarket, "current_price", {"number", "integer", "null"}, False),
    (GeckoMarket, "market_cap_rank", {"integer", "null"}, False),
    (GeckoMarket, "roi", {"object", "null"}, False),
    (GeckoMarket, "last_updated", {"string", "null"}, False),
    (PaprikaTicker, "quotes", {"object", "null"}, False),
    (PaprikaTicker, "circulating_supply", {"number", "integer", "null"}, False),
    (PaprikaTicker, "rank", {"integer", "null"}, False),
    (CsvRow, "price_usd", {"number", "integer"}, True),
    (CsvRow, "symbol", {"string"}, True),
]


@pytest.mark.parametrize(("model", "field", "types", "required"), SCHEMA_CASES)
def test_expected_schema_is_derived_from_the_model(
    model: type[Any], field: str, types: set[str], required: bool
) -> None:
    spec = expected_schema(model).fields[field]
    assert set(spec.types) == types
    assert spec.required is required


def test_expected_schema_covers_every_model_field_and_nests() -> None:
    paprika = expected_schema(PaprikaTicker)
    assert set(paprika.fields) == set(PaprikaTicker.model_fields)
    quotes = paprika.fields["quotes"]
    assert quotes.nested_is_map is True
    assert quotes.nested is not None
    assert "percent_change_15m" in quotes.nested.fields
    roi = expected_schema(GeckoMarket).fields["roi"]
    assert roi.nested is not None
    assert roi.nested_is_map is False
    assert set(roi.nested.fields) == {"times", "currency", "percentage"}


def _gecko(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GECKO_BTC)
    data.update({k: v for k, v in changes.items() if v is not ...})
    for key in [k for k, v in changes.items() if v is ...]:
        data.pop(key)
    return data


def _events(events: list[DriftEvent]) -> set[tuple[str, str]]:
    return {(e.field, e.kind) for e in events}


GECKO_FULL = {key: GECKO_BTC.get(key) for key in GeckoMarket.model_fields}

# (label, payload, expected (field, kind) events)
GECKO_DRIFT: list[tuple[str, dict[str, Any], set[tuple[str, str]]]] = [
    ("no drift", dict(GECKO_FULL), set()),
    ("nulls are not drift", {**GECKO_FULL, "current_price": None, "roi": None}, set()),
    ("int where float expected", {**GECKO_FULL, "current_price": 5}, set()),
    ("missing optional", {k: v for k, v in GECKO_FULL.items() if k != "image"}, {("image", "missing")}),
    ("missing required", {k: v for k, v in GECKO_FULL.items() if k != "id"}, {("id", "missing")}),
    ("new field", {**GECKO_FULL, "sparkline_in_7d": {"price": []}}, {("sparkline_in_7d", "new")}),
    ("string price", {**GECKO_FULL, "current_price": "16730.75"}, {("current_price", "type_changed")}),
    ("float rank", {**GECKO_FULL, "market_cap_rank": 1.0}, {("market_cap_rank", "type_changed")}),
    ("boolean price", {**GECKO_FULL, "current_price": True}, {("current_price", "type_changed")}),
    ("roi list", {**GECKO_FULL, "roi": [1]}, {("roi", "type_changed")}),
    ("nested roi new", {**GECKO_FULL, "roi": {"times": 1, "currency": "usd", "percentage": 1, "x": 1}}, {("roi.x", "new")}),
    ("nested roi missing", {**GECKO_FULL, "roi": {"times": 1, "currency": "usd"}}, {("roi.percentage", "missing")}),
    ("renamed", {**{k: v for k, v in GECKO_FULL.items() if k != "total_volume"}, "volume": 1}, {("total_volume", "missing"), ("volume", "new")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "payload", "expected"), GECKO_DRIFT, ids=[c[0] for c in GECKO_DRIFT]
)
def test_gecko_drift_events(
    label: str, payload: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    detector = DriftDetector(expected_schema(GeckoMarket))
    assert _events(detector.observe(payload)) == expected


def test_event_carries_expected_observed_and_sample() -> None:
    detector = DriftDetector(expected_schema(GeckoMarket))
    (event,) = detector.observe({**GECKO_FULL, "current_price": "16730.75"})
    assert event.expected == "integer|null|number"
    assert event.observed == "string"
    assert event.sample_value == '"16730.75"'
    (new,) = DriftDetector(expected_schema(GeckoMarket)).observe({**GECKO_FULL, "extra": "x" * 500})
    assert new.observed == "string"
    assert new.sample_value is not None
    assert len(new.sample_value) <= 200


def test_non_object_payload_is_a_root_type_change() -> None:
    detector = DriftDetector(expected_schema(GeckoMarket))
    assert [(e.field, e.kind, e.observed) for e in detector.observe([1, 2])] == [
        ("$", "type_changed", "array")
    ]


PAPRIKA_FULL: dict[str, Any] = {
    **{key: PAPRIKA_BTC.get(key) for key in PaprikaTicker.model_fields},
    "quotes": {
        "USD": {
            key: PAPRIKA_BTC["quotes"]["USD"].get(key)
            for key in expected_schema(PaprikaTicker).fields["quotes"].nested.fields  # type: ignore[union-attr]
        }
    },
}


def _paprika_quote(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(PAPRIKA_FULL)
    quote = data["quotes"]["USD"]
    for key, value in changes.items():
        if value is ...:
            quote.pop(key)
        else:
            quote[key] = value
    return data


PAPRIKA_DRIFT: list[tuple[str, dict[str, Any], set[tuple[str, str]]]] = [
    ("no drift", copy.deepcopy(PAPRIKA_FULL), set()),
    ("free plan", {k: v for k, v in PAPRIKA_FULL.items() if k != "circulating_supply"}, {("circulating_supply", "missing")}),
    ("nested missing", _paprika_quote(percent_change_15m=...), {("quotes.USD.percent_change_15m", "missing")}),
    ("nested new", _paprika_quote(percent_change_2h=1.0), {("quotes.USD.percent_change_2h", "new")}),
    ("nested type", _paprika_quote(price="1.0"), {("quotes.USD.price", "type_changed")}),
    ("nested renamed", _paprika_quote(price=..., price_usd=1.0), {("quotes.USD.price", "missing"), ("quotes.USD.price_usd", "new")}),
    ("quotes as list", {**PAPRIKA_FULL, "quotes": []}, {("quotes", "type_changed")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "payload", "expected"), PAPRIKA_DRIFT, ids=[c[0] for c in PAPRIKA_DRIFT]
)
def test_paprika_drift_events(
    label: str, payload: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    detector = DriftDetector(expected_schema(PaprikaTicker))
    assert _events(detector.observe(payload)) == expected


def test_each_change_is_reported_once_per_detector() -> None:
    detector = DriftDetector(expected_schema(PaprikaTicker))
    reported: list[DriftEvent] = []
    for i in range(500):
        payload = {k: v for k, v in PAPRIKA_FULL.items() if k != "circulating_supply"}
        payload = {**payload, "id": f"coin-{i}", "rank": i}
        if i % 2:
            payload["quotes"] = {"USD": {**PAPRIKA_FULL["quotes"]["USD"], "price": str(i)}}
        reported.extend(detector.observe(payload))
    assert sorted(_events(reported)) == [
        ("circulating_supply", "missing"),
        ("quotes.USD.price", "type_changed"),
    ]
    assert len(reported) == 2
    fresh = DriftDetector(expected_schema(PaprikaTicker))
    assert _events(fresh.observe(payload)) == {
        ("circulating_supply", "missing"),
        ("quotes.USD.price", "type_changed"),
    }


# (ignore_types, payload changes, expected events)
CSV_DRIFT: list[tuple[bool, dict[str, Any], set[tuple[str, str]]]] = [
    (True, {}, set()),
    (True, {"exchange": "binance"}, {("exchange", "new")}),
    (True, {"price_usd": ...}, {("price_usd", "missing")}),
    (False, {}, {("price_usd", "type_changed")}),
]


@pytest.mark.parametrize(("ignore_types", "changes", "expected"), CSV_DRIFT)
def test_csv_drift_ignores_cell_types(
    ignore_types: bool, changes: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    row: dict[str, Any] = dict.fromkeys(CsvRow.model_fields)
    row.update(symbol="BTC", name="Bitcoin", price_usd="65000")
    for key, value in changes.items():
        if value is ...:
            row.pop(key)
        else:
            row[key] = value
    detector = DriftDetector(expected_schema(CsvRow), ignore_types=ignore_types)
    assert _events(detector.observe(row)) == expected


def _drift_of(filename: str) -> set[tuple[str, str]]:
    if not RECORDED_DIR.is_dir():
        pytest.skip(f"{RECORDED_DIR} is absent")
    path = RECORDED_DIR / filename
    if not path.exists():
        pytest.skip(f"{path} is absent")
    detector = DriftDetector(expected_schema(PaprikaTicker))
    events: list[DriftEvent] = []
    for row in json.loads(path.read_bytes()):
        events.extend(detector.observe(row))
    assert len(events) == len(_events(events))  # once each
    return _events(events)


def test_recorded_2019_paprika_shape_drifts_from_the_current_model() -> None:
    old = _drift_of("coinpaprika_tickers_paprika-viewer_2019-10-04_usd.json")
    assert ("first_data_at", "missing") in old
    assert ("quotes.USD.percent_change_15m", "missing") in old
    assert ("quotes.USD.percent_change_30m", "missing") in old
    assert ("quotes.USD.percent_change_6h", "missing") in old
    assert all(kind == "missing" for _, kind in old)


def test_recorded_2023_paprika_shape_matches_the_model() -> None:
    recent = _drift_of("coinpaprika_tickers_greenyun2-coinwebsite_2023-08-11_usd.json")
    assert ("first_data_at", "missing") not in recent
    assert ("quotes.USD.percent_change_15m", "missing") not in recent
    assert recent == set()
