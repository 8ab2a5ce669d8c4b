"""``GET /data``: filters, sorting, keyset and offset pagination, cursor validation."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from tests.api.conftest import COINS, SOURCES, ClientFactory, Seeded, TestClient


def _get(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/data", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_empty_table_returns_an_empty_first_and_last_page(client: TestClient) -> None:
    body = _get(client)
    assert body["data"] == []
    assert body["pagination"] == {"limit": 50, "next_cursor": None, "has_more": False, "total": 0}
    assert body["meta"]["data_version"] == 0


def test_body_shape_and_meta(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/data", headers={"X-Request-ID": "req-123"})
    body = response.json()
    assert set(body) == {"data", "pagination", "meta"}
    assert body["meta"]["request_id"] == "req-123"
    assert body["meta"]["data_version"] == 1
    assert body["meta"]["api_latency_ms"] >= 0
    assert body["pagination"]["total"] == seeded.unified_rows
    first = body["data"][0]
    assert {
        "asset_id",
        "source",
        "coin_id",
        "symbol",
        "price_usd",
        "market_cap_usd",
        "ingested_at",
    } <= set(first)
    assert "payload_hash" not in first


@pytest.mark.parametrize(
    ("params", "expected_count", "check"),
    [
        ({"symbol": "btc"}, 6, lambda r: r["symbol"].lower() == "btc"),
        ({"symbol": "BtC", "source": "coingecko"}, 2, lambda r: r["source"] == "coingecko"),
        ({"source": "csv"}, len(COINS), lambda r: r["source"] == "csv"),
        ({"asset_id": 2}, 3, lambda r: r["asset_id"] == 2),
        ({"coin_id": "ethereum-coingecko"}, 1, lambda r: r["coin_id"] == "ethereum-coingecko"),
        ({"min_price": 100}, 9, lambda r: r["price_usd"] >= 100),
        ({"max_price": 1.5}, 6, lambda r: r["price_usd"] <= 1.5),
        ({"min_price": 100, "max_price": 200}, 3, lambda r: 100 <= r["price_usd"] <= 200),
        ({"min_market_cap": 1e11}, 9, lambda r: r["market_cap_usd"] >= 1e11),
        ({"symbol": "nosuch"}, 0, lambda r: False),
    ],
)
def test_filters(
    client: TestClient, seeded: Seeded, params: dict[str, Any], expected_count: int, check: Any
) -> None:
    body = _get(client, limit=500, **params)
    assert len(body["data"]) == expected_count
    assert body["pagination"]["total"] == expected_count
    assert all(check(row) for row in body["data"])


def test_symbol_filter_returns_each_asset_it_names_not_unrelated_coins(
    client: TestClient, seeded: Seeded
) -> None:
    rows = _get(client, symbol="eth", limit=500)["data"]
    assert {row["asset_id"] for row in rows} == {2}
    assert {row["source"] for row in rows} == set(SOURCES)


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("price_usd", "price_usd", False),
        ("-price_usd", "price_usd", True),
        ("-market_cap_usd", "market_cap_usd", True),
        ("rank", "rank", False),
        ("-id", "id", True),
        ("ingested_at", "ingested_at", False),
    ],
)
def test_sort_orders_rows_with_nulls_last(
    client: TestClient, seeded: Seeded, sort: str, key: str, reverse: bool
) -> None:
    rows = _get(client, sort=sort, limit=500)["data"]
    values = [row[key] for row in rows]
    present = [v for v in values if v is not None]
    assert values[: len(present)] == present, "NULLs must come last"
    assert present == sorted(present, reverse=reverse)


@pytest.mark.parametrize("sort", ["payload_hash", "--price_usd", "price", "-", "drop table"])
def test_sort_outside_the_allow_list_is_422(client: TestClient, sort: str) -> None:
    response = client.get("/data", params={"sort": sort})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "sort", ["id", "-price_usd", "market_cap_usd", "-rank", "symbol", "-ingested_at"]
)
@pytest.mark.parametrize("limit", [1, 4, 7])
def test_walking_all_pages_returns_every_row_exactly_once(
    client: TestClient, seeded: Seeded, sort: str, limit: int
) -> None:
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = _get(client, **params)
        pages += 1
        seen.extend(row["id"] for row in body["data"])
        assert len(body["data"]) <= limit
        cursor = body["pagination"]["next_cursor"]
        assert body["pagination"]["has_more"] is (cursor is not None)
        if cursor is None:
            break
        assert pages < 100
    assert len(seen) == len(set(seen)) == seeded.unified_rows
    full = [row["id"] for row in _get(client, sort=sort, limit=500)["data"]]
    assert seen == full


def test_last_page_has_no_cursor(client: TestClient, seeded: Seeded) -> None:
    first = _get(client, limit=seeded.unified_rows - 1, sort="id")
    assert first["pagination"]["has_more"] is True
    last = _get(
        client, limit=seeded.unified_rows - 1, sort="id", cursor=first["pagination"]["next_cursor"]
    )
    assert len(last["data"]) == 1
    assert last["pagination"] == {
        "limit": seeded.unified_rows - 1,
        "next_cursor": None,
        "has_more": False,
        "total": seeded.unified_rows,
    }


def test_exact_fit_page_reports_no_more(client: TestClient, seeded: Seeded) -> None:
    body = _get(client, limit=seeded.unified_rows)
    assert body["pagination"]["has_more"] is False
    assert body["pagination"]["next_cursor"] is None


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("cursor", "sort"),
    [
        ("not-base64!", "id"),
        ("Zm9v", "id"),  # "foo": not JSON
        (_cursor({"a": 1}), "id"),
        (_cursor(["id", 1]), "id"),
        (_cursor(["id", 1, "x"]), "id"),
        (_cursor(["id", "x", 1]), "id"),
        (_cursor(["-price_usd", 1.0, 1]), "id"),  # issued for another sort
        (_cursor(["ingested_at", "yesterday", 1]), "ingested_at"),
        (_cursor(["id", 1, -5]), "id"),
    ],
)
def test_invalid_cursor_is_422(client: TestClient, seeded: Seeded, cursor: str, sort: str) -> None:
    response = client.get("/data", params={"cursor": cursor, "sort": sort})
    assert response.status_code == 422
    assert response.json()["error"]["code"] in ("invalid_cursor", "validation_error")


def test_page_and_offset_compatibility(client: TestClient, seeded: Seeded) -> None:
    full = [row["id"] for row in _get(client, sort="id", limit=500)["data"]]
    page2 = [row["id"] for row in _get(client, sort="id", limit=5, page=2)["data"]]
    offset7 = [row["id"] for row in _get(client, sort="id", limit=5, offset=7)["data"]]
    assert page2 == full[5:10]
    assert offset7 == full[7:12]
    beyond = _get(client, sort="id", limit=5, page=1000)
    assert beyond["data"] == []
    assert beyond["pagination"]["has_more"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"page": 0},
        {"offset": -1},
        {"page": 2, "offset": 3},
        {"cursor": _cursor(["id", 1, 1]), "page": 2},
        {"min_price": -1},
        {"min_price": "nan"},
        {"max_price": "inf"},
        {"source": "binance"},
        {"asset_id": 0},
        {"asset_id": 2**40},
        {"symbol": ""},
        {"symbol": "x" * 65},
    ],
)
def test_invalid_parameters_are_422_with_the_error_shape(
    client: TestClient, params: dict[str, Any]
) -> None:
    response = client.get("/data", params=params)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["request_id"] == response.headers["x-request-id"]


def test_limit_default_and_maximum(make_client: ClientFactory, seeded: Seeded) -> None:
    client = make_client()
    assert _get(client)["pagination"]["limit"] == 50
    assert _get(client, limit=500)["pagination"]["limit"] == 500
