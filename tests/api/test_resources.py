"""``/``, ``/stats``, ``/runs``, ``/assets`` and ``/drift`` against a seeded market."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.db.models import AssetSource, UnifiedCrypto
from tests.api.conftest import NOW, ClientFactory, Seeded, TestClient, bump_version


def _ok(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_root_lists_sources_and_links(client: TestClient) -> None:
    body = _ok(client, "/")
    assert body["name"] == "kasparro"
    assert body["sources"] == ["coinpaprika", "coingecko", "csv"]
    assert {"docs", "health", "metrics"} <= set(body["links"])


def test_stats_per_source_and_totals(client: TestClient, seeded: Seeded) -> None:
    body = _ok(client, "/stats")
    by_source = {s["source"]: s for s in body["sources"]}
    assert list(by_source) == ["coinpaprika", "coingecko", "csv"]
    gecko = by_source["coingecko"]
    assert (gecko["unified_rows"], gecko["raw_rows"], gecko["assets_covered"], gecko["runs"]) == (
        7,
        4,
        7,
        2,
    )
    assert gecko["success_rate"] == 0.5
    assert (gecko["drift_events"], gecko["quarantined"]) == (2, 1)
    assert gecko["circuit_breaker"]["state"] == "open"
    assert gecko["last_run"]["id"] == seeded.runs["coingecko"][1]
    assert gecko["last_run"]["status"] == "failed"
    assert by_source["coinpaprika"]["success_rate"] == 1.0
    assert by_source["csv"]["circuit_breaker"]["state"] == "closed"
    assert body["totals"] == {
        "unified_rows": 21,
        "raw_rows": 4,
        "assets": 8,
        "runs": 6,
        "drift_events": 3,
        "quarantined": 1,
    }
    assert body["meta"]["data_version"] == 1


def test_stats_window_narrows_the_success_rate(client: TestClient, seeded: Seeded) -> None:
    body = _ok(client, "/stats", window=1)
    assert body["window"] == 1
    assert {s["source"]: s["success_rate"] for s in body["sources"]} == {
        "coinpaprika": 1.0,
        "coingecko": 0.0,
        "csv": 1.0,
    }


def test_stats_on_an_empty_database(client: TestClient) -> None:
    body = _ok(client, "/stats")
    assert all(s["last_run"] is None and s["success_rate"] is None for s in body["sources"])
    assert body["totals"]["runs"] == 0


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [6, 5, 4, 3, 2, 1]),
        ({"source": "coingecko"}, [4, 3]),
        ({"status": "failed"}, [4]),
        ({"source": "csv", "status": "failed"}, []),
        ({"limit": 2}, [6, 5]),
        ({"limit": 2, "page": 3}, [2, 1]),
        ({"offset": 4}, [2, 1]),
    ],
)
def test_runs_newest_first_with_filters(
    client: TestClient, seeded: Seeded, params: dict[str, Any], expected: list[int]
) -> None:
    assert [run["id"] for run in _ok(client, "/runs", **params)["data"]] == expected


def test_runs_cursor_walk(client: TestClient, seeded: Seeded) -> None:
    ids: list[int] = []
    cursor = None
    while True:
        body = _ok(client, "/runs", limit=4, **({"cursor": cursor} if cursor else {}))
        ids += [run["id"] for run in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert ids == [6, 5, 4, 3, 2, 1]


def test_run_detail_with_drift_and_quarantine(client: TestClient, seeded: Seeded) -> None:
    body = _ok(client, f"/runs/{seeded.runs['coingecko'][1]}")
    assert body["run"]["status"] == "failed"
    assert body["run"]["error"] == "boom"
    assert sorted(d["field"] for d in body["drift"]) == ["market_cap", "roi"]
    assert body["quarantine_count"] == 1


@pytest.mark.parametrize(
    ("path", "status"), [("/runs/999", 404), ("/runs/0", 422), ("/runs/abc", 422)]
)
def test_run_detail_errors(client: TestClient, seeded: Seeded, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert "error" in response.json()


def test_compare_two_runs_of_a_source(client: TestClient, seeded: Seeded) -> None:
    a, b = seeded.runs["coinpaprika"]
    body = _ok(client, "/runs/compare", a=a, b=b, threshold=4)
    assert body["counts"]["loaded"] == {"a": 7, "b": 6, "delta": -1}
    assert body["counts"]["observed_assets"] == {"a": 6, "b": 7, "delta": 1}
    assert [x["asset_id"] for x in body["assets_added"]] == [6]
    assert body["assets_removed"] == []
    moved = body["price_moved"]
    assert [m["asset_id"] for m in moved] == [1, 3, 5, 7]
    assert moved[0]["change_pct"] == pytest.approx(10.0)
    assert moved[1]["change_pct"] == pytest.approx(5.0)
    higher = _ok(client, "/runs/compare", a=a, b=b, threshold=6)
    assert [m["asset_id"] for m in higher["price_moved"]] == [1]


def test_compare_sees_a_new_asset_and_removal_in_reverse(
    client: TestClient, seeded: Seeded
) -> None:
    a, b = seeded.runs["csv"]
    forward = _ok(client, "/runs/compare", a=a, b=b)
    assert {x["asset_id"] for x in forward["assets_added"]} == {6, 8}
    backward = _ok(client, "/runs/compare", a=b, b=a)
    assert {x["asset_id"] for x in backward["assets_removed"]} == {6, 8}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"a": 1, "b": 3}, 422),
        ({"a": 1, "b": 999}, 404),
        ({"a": 1}, 422),
        ({"a": 1, "b": 2, "threshold": -1}, 422),
    ],
)
def test_compare_errors(
    client: TestClient, seeded: Seeded, params: dict[str, Any], status: int
) -> None:
    assert client.get("/runs/compare", params=params).status_code == status


def test_assets_list_filter_and_walk(client: TestClient, seeded: Seeded) -> None:
    body = _ok(client, "/assets")
    assert [a["id"] for a in body["data"]] == list(range(1, 9))
    assert body["data"][0]["sources"] == ["coingecko", "coinpaprika", "csv"]
    assert body["data"][7]["flagged"] is True
    assert [a["id"] for a in _ok(client, "/assets", symbol="btc")["data"]] == [1, 7]
    ids, cursor = [], None
    while True:
        page = _ok(client, "/assets", limit=3, **({"cursor": cursor} if cursor else {}))
        ids += [a["id"] for a in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert ids == list(range(1, 9))


# the seeded records are from 2024: a staleness limit of ~300 years keeps them fresh
FOREVER = 1e10


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"flagged": "true"}, [8]),
        ({"flagged": "false"}, list(range(1, 8))),
        ({"source": "csv"}, list(range(1, 8))),
        ({"source": "csv", "symbol": "btc"}, [1, 7]),
        ({"source": "csv", "flagged": "true"}, []),
    ],
)
def test_assets_filter_by_source_and_flag(
    client: TestClient, seeded: Seeded, params: dict[str, Any], expected: list[int]
) -> None:
    body = _ok(client, "/assets", **params)
    assert [a["id"] for a in body["data"]] == expected
    assert body["pagination"]["total"] == len(expected)
    if "source" in params:
        assert all(params["source"] in a["sources"] for a in body["data"])


def test_assets_source_filter_follows_the_source_mapping(
    client: TestClient, engine: Engine, seeded: Seeded
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.delete(AssetSource).where(
                AssetSource.asset_id == 2, AssetSource.source == "coingecko"
            )
        )
    bump_version(engine)
    ids = [a["id"] for a in _ok(client, "/assets", source="coingecko")["data"]]
    assert ids == [1, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("settings", "consensus", "spread", "used"),
    [
        ({"stale_after": FOREVER}, 60000.0, 2.0, ["coingecko", "coinpaprika", "csv"]),
        (
            {"stale_after": FOREVER, "sources": ["csv", "coingecko"]},
            60000.0,
            2.0,
            ["coingecko", "csv"],
        ),
        ({"stale_after": FOREVER, "sources": ["coinpaprika"]}, 60000.0, None, ["coinpaprika"]),
        ({"stale_after": 3600}, None, None, []),  # every record is stale
    ],
)
def test_asset_detail_consensus_over_fresh_records_of_enabled_sources(
    make_client: ClientFactory,
    seeded: Seeded,
    settings: dict[str, Any],
    consensus: float | None,
    spread: float | None,
    used: list[str],
) -> None:
    body = _ok(make_client(**settings), "/assets/1")
    assert body["asset"]["symbol"] == "BTC"
    assert sorted(r["source"] for r in body["records"]) == ["coingecko", "coinpaprika", "csv"]
    assert body["consensus_sources"] == used
    assert body["consensus_price_usd"] == (pytest.approx(consensus) if consensus else None)
    assert body["spread_pct"] == (pytest.approx(spread) if spread else None)


def test_consensus_skips_only_the_stale_source(
    make_client: ClientFactory, engine: Engine, seeded: Seeded
) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.update(UnifiedCrypto)
            .where(UnifiedCrypto.asset_id == 1, UnifiedCrypto.source != "csv")
            .values(ingested_at=now, source_updated_at=now)
        )
    body = _ok(make_client(stale_after=3600), "/assets/1")
    assert body["consensus_sources"] == ["coingecko", "coinpaprika"]
    assert body["consensus_price_usd"] == pytest.approx(60300.0)
    assert body["spread_pct"] == pytest.approx(600 / 60300 * 100)


def test_asset_without_prices_has_no_consensus(client: TestClient, seeded: Seeded) -> None:
    body = _ok(client, "/assets/6")
    assert body["consensus_price_usd"] is None
    assert body["spread_pct"] is None


@pytest.mark.parametrize("path", ["/assets/999", "/assets/999/history"])
def test_unknown_asset_is_404(client: TestClient, seeded: Seeded, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def _iso(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


def test_history_hourly_ohlc(client: TestClient, seeded: Seeded) -> None:
    body = _ok(
        client,
        "/assets/1/history",
        **{"from": _iso(-timedelta(days=1)), "to": _iso(timedelta(hours=1)), "interval": "1h"},
    )
    buckets = body["buckets"]
    assert [b["start"][:16] for b in buckets] == ["2024-06-01T06:00", "2024-06-01T11:00"]
    assert buckets[0]["observations"] == 3
    late = buckets[1]
    assert late["observations"] == 4
    assert late["open"] == pytest.approx(63000.0)
    assert late["close"] == pytest.approx(66000.0)
    assert late["high"] == pytest.approx(66000.0)
    assert late["low"] == pytest.approx(62370.0)


def test_history_daily_and_by_source(client: TestClient, seeded: Seeded) -> None:
    window = {"from": _iso(-timedelta(days=2)), "to": _iso(timedelta(days=1))}
    daily = _ok(client, "/assets/1/history", interval="1d", **window)["buckets"]
    assert len(daily) == 1
    assert daily[0]["observations"] == 7
    gecko = _ok(client, "/assets/1/history", interval="1h", source="coingecko", **window)["buckets"]
    assert [b["observations"] for b in gecko] == [1, 1]
    empty = _ok(
        client,
        "/assets/1/history",
        **{"from": _iso(timedelta(days=5)), "to": _iso(timedelta(days=6))},
    )
    assert empty["buckets"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"interval": "5m"},
        {"from": "2024-06-02T00:00:00Z", "to": "2024-06-01T00:00:00Z"},
        {"from": "2000-01-01T00:00:00Z", "to": "2024-06-01T00:00:00Z", "interval": "1h"},
        {"from": "yesterday"},
    ],
)
def test_history_invalid_ranges(client: TestClient, seeded: Seeded, params: dict[str, Any]) -> None:
    assert client.get("/assets/1/history", params=params).status_code == 422


@pytest.mark.parametrize(
    ("params", "expected"),
    [({}, 3), ({"source": "coingecko"}, 2), ({"run_id": 6}, 1), ({"source": "coinpaprika"}, 0)],
)
def test_drift_filters(
    client: TestClient, seeded: Seeded, params: dict[str, Any], expected: int
) -> None:
    body = _ok(client, "/drift", **params)
    assert len(body["data"]) == expected == body["pagination"]["total"]
    ids = [d["id"] for d in body["data"]]
    assert ids == sorted(ids, reverse=True)
