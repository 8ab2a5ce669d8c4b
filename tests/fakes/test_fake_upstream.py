"""The fake upstream itself: shapes match the documented APIs, paging, faults, limits and data helpers."""

from __future__ import annotations

import csv
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import (
    FakeUpstream,
    Fault,
    advance,
    coingecko_market,
    coinpaprika_ticker,
    coins,
    drop_field,
    rename_field,
    set_field,
    write_history_csv,
)

PAPRIKA_KEYS = [
    "id", "name", "symbol", "rank", "circulating_supply", "total_supply", "max_supply",
    "beta_value", "first_data_at", "last_updated", "quotes",
]  # fmt: skip
GECKO_KEYS = [
    "id", "symbol", "name", "image", "current_price", "market_cap", "market_cap_rank",
    "fully_diluted_valuation", "total_volume", "high_24h", "low_24h", "price_change_24h",
    "price_change_percentage_24h", "market_cap_change_24h", "market_cap_change_percentage_24h",
    "circulating_supply", "total_supply", "max_supply", "ath", "ath_change_percentage", "ath_date",
    "atl", "atl_change_percentage", "atl_date", "roi", "last_updated",
]  # fmt: skip
PAPRIKA_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
GECKO_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """Same as the shared ``fake_upstream`` fixture (importing that here would shadow its name)."""
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def test_world_is_consistent_across_sources_and_has_traps(tmp_path: Path) -> None:
    world = coins(60, seed=3)
    assert [c.rank for c in world] == list(range(1, 61))
    assert world[0].name == "Bitcoin"
    by_name = {c.name: c for c in world}
    assert by_name["Tether"].symbol == by_name["Bridged USDT"].symbol == "USDT"
    assert "\u200b\u200bStable" in by_name
    assert "币安人生" in by_name
    assert len({c.gecko_id for c in world}) == len({c.paprika_id for c in world}) == 60
    btc = world[0]
    paprika, gecko = coinpaprika_ticker(btc), coingecko_market(btc)
    assert (paprika["id"], paprika["symbol"], paprika["name"]) == ("btc-bitcoin", "BTC", "Bitcoin")
    assert (gecko["id"], gecko["symbol"], gecko["name"]) == ("bitcoin", "btc", "Bitcoin")
    write_history_csv(tmp_path / "h.csv", world[:1], days=2, layout="unified")
    with (tmp_path / "h.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert (rows[-1]["symbol"], rows[-1]["name"], float(rows[-1]["price_usd"])) == (
        "BTC",
        "Bitcoin",
        btc.price,
    )
    assert coins(60, seed=3) == world  # deterministic


def test_row_shapes_follow_the_documented_apis() -> None:
    world = coins(40)
    paprika = [coinpaprika_ticker(c) for c in world]
    assert all(list(r) == PAPRIKA_KEYS for r in paprika)
    assert all(PAPRIKA_TS.match(r["last_updated"]) for r in paprika)
    assert all(
        isinstance(r[k], int)
        for r in paprika
        for k in ("circulating_supply", "total_supply", "max_supply")
    )
    assert any(r["max_supply"] == 0 for r in paprika)  # 0 = no cap, never null
    assert any(r["quotes"]["USD"]["ath_price"] is None for r in paprika)
    assert "circulating_supply" not in coinpaprika_ticker(world[0], free_plan=True)
    gecko = [coingecko_market(c) for c in world]
    assert all(list(r) == GECKO_KEYS for r in gecko)
    assert all(r["symbol"] == r["symbol"].lower() for r in gecko)
    assert all(GECKO_TS.match(r["last_updated"]) for r in gecko if r["last_updated"])
    assert any(r["current_price"] is None for r in gecko)
    assert any(r["max_supply"] is None for r in gecko)
    assert any(
        isinstance(r["roi"], dict) and set(r["roi"]) == {"times", "currency", "percentage"}
        for r in gecko
    )


@pytest.mark.parametrize(("fraction", "changed"), [(0.0, 0), (1.0, 20)])
def test_advance_moves_prices_and_time(fraction: float, changed: int) -> None:
    world = coins(20)
    later = advance(world, minutes=5, seed=1, fraction=fraction)
    moved = [(a, b) for a, b in zip(world, later, strict=True) if a != b]
    assert len(moved) == changed
    assert all(b.updated_at > a.updated_at and b.price != a.price for a, b in moved)
    assert all(
        coinpaprika_ticker(a) == coinpaprika_ticker(b)
        for a, b in zip(world, later, strict=True)
        if a == b
    )


@pytest.mark.parametrize("layout", ["kaggle", "unified"])
def test_history_csv_layouts(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "history.csv"
    assert write_history_csv(path, coins(5), days=3, layout=layout) == 15  # type: ignore[arg-type]
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == ("SNo" if layout == "kaggle" else "symbol")
    assert len(rows) == 16
    if layout == "kaggle":
        assert rows[1][3].endswith(" 23:59:59")


def test_paprika_routes(upstream: FakeUpstream, client: httpx.Client) -> None:
    tickers = client.get(f"{upstream.coinpaprika_url}/tickers", params={"quotes": "USD"})
    assert tickers.status_code == 200
    assert len(tickers.json()) == 25
    one = client.get(f"{upstream.coinpaprika_url}/tickers/eth-ethereum")
    assert one.json()["symbol"] == "ETH"
    missing = client.get(f"{upstream.coinpaprika_url}/tickers/nope-nope")
    assert (missing.status_code, missing.json()) == (404, {"error": "id not found"})


@pytest.mark.parametrize(
    ("params", "status", "ids"),
    [
        ({"vs_currency": "usd", "per_page": 10, "page": 1}, 200, (1, 10, 10)),
        ({"vs_currency": "usd", "per_page": 10, "page": 3}, 200, (21, 24, 5)),  # + a null-rank row
        ({"vs_currency": "usd", "per_page": 10, "page": 4}, 200, None),
        ({"vs_currency": "usd"}, 200, (1, 24, 25)),
        ({"per_page": 10}, 400, None),
    ],
)
def test_gecko_markets_paging(
    upstream: FakeUpstream, client: httpx.Client, params: dict[str, Any], status: int, ids: Any
) -> None:
    upstream.set_coins(coins(25))
    response = client.get(f"{upstream.coingecko_url}/coins/markets", params=params)
    assert response.status_code == status
    if status == 400:
        assert response.json() == {"error": "invalid vs_currency"}
    elif ids is None:
        assert response.json() == []
    else:
        ranks = [r["market_cap_rank"] for r in response.json() if r["market_cap_rank"] is not None]
        assert (ranks[0], ranks[-1], len(response.json())) == ids


def _get(client: httpx.Client, url: str) -> Any:
    try:
        response = client.get(url, timeout=0.3)
    except httpx.TransportError as exc:
        return type(exc).__name__
    try:
        return response.status_code, response.headers.get("retry-after"), response.json()
    except json.JSONDecodeError:
        return response.status_code, "not json"


@pytest.mark.parametrize(
    ("source", "fault", "check"),
    [
        ("coingecko", Fault.http(429, retry_after=119), lambda r: r[:2] == (429, "119") and r[2]["status"]["error_code"] == 429),
        ("coinpaprika", Fault.http(429), lambda r: r == (429, None, {"error": "you have reached maximum request limit"})),
        ("coinpaprika", Fault.http(500, {"error": "boom"}), lambda r: r == (500, None, {"error": "boom"})),
        ("coingecko", Fault.html(403), lambda r: r == (403, "not json")),
        ("coingecko", Fault.truncated(), lambda r: r == (200, "not json")),
        ("coingecko", Fault.timeout(5), lambda r: r == "ReadTimeout"),
        ("coingecko", Fault.reset(), lambda r: r in ("ReadError", "RemoteProtocolError")),
        ("coingecko", Fault.close(), lambda r: r in ("ReadError", "RemoteProtocolError")),
        ("coingecko", Fault.empty(), lambda r: r == (200, None, [])),
        ("coingecko", Fault.mutated(drop_field("current_price")), lambda r: "current_price" not in r[2][0]),
        ("coingecko", Fault.mutated(rename_field("symbol", "ticker")), lambda r: "ticker" in r[2][0]),
        ("coingecko", Fault.mutated(set_field("market_cap", "1e9")), lambda r: r[2][0]["market_cap"] == "1e9"),
    ],
)  # fmt: skip
def test_faults_are_served_once_then_normal(
    upstream: FakeUpstream, client: httpx.Client, source: str, fault: Fault, check: Any
) -> None:
    url = (
        f"{upstream.coingecko_url}/coins/markets?vs_currency=usd"
        if source == "coingecko"
        else f"{upstream.coinpaprika_url}/tickers"
    )
    upstream.inject(source, fault)
    assert check(_get(client, url))
    status, _, body = _get(client, url)
    assert (status, len(body)) == (200, 25)


def test_paprika_nested_mutator_leaves_stored_rows_alone(
    upstream: FakeUpstream, client: httpx.Client
) -> None:
    upstream.inject("coinpaprika", Fault.mutated(drop_field("quotes.USD.percent_change_15m")))
    first = client.get(f"{upstream.coinpaprika_url}/tickers").json()
    assert "percent_change_15m" not in first[0]["quotes"]["USD"]
    assert "percent_change_15m" in upstream.paprika_rows[0]["quotes"]["USD"]


def test_request_log_records_headers_and_counts(
    upstream: FakeUpstream, client: httpx.Client
) -> None:
    client.get(f"{upstream.coingecko_url}/ping", headers={"x-cg-demo-api-key": "k1"})
    client.get(f"{upstream.coingecko_url}/ping")
    client.get(f"{upstream.coinpaprika_url}/tickers", params={"quotes": "USD"})
    pings = upstream.requests(route="coingecko.ping")
    assert [r.headers.get("x-cg-demo-api-key") for r in pings] == ["k1", None]
    assert upstream.requests(source="coinpaprika")[0].query == {"quotes": "USD"}
    assert upstream.requests_by_route == {"coingecko.ping": 2, "coinpaprika.tickers": 1}
    assert pings[0].at <= pings[1].at


def test_enforced_limits_answer_429(upstream: FakeUpstream, client: httpx.Client) -> None:
    upstream.enforce_limits(paprika_per_second=2, gecko_per_minute=3)
    gecko = [client.get(f"{upstream.coingecko_url}/ping") for _ in range(4)]
    assert [r.status_code for r in gecko] == [200, 200, 200, 429]
    assert 1 <= int(gecko[-1].headers["retry-after"]) <= 60
    paprika = [client.get(f"{upstream.coinpaprika_url}/tickers/btc-bitcoin") for _ in range(3)]
    assert [r.status_code for r in paprika][:2] == [200, 200]
    assert upstream.served_429["coingecko"] == 1
    if paprika[2].status_code == 429:  # not guaranteed: a slow machine may cross the 1 s window
        assert paprika[2].json() == {"error": "you have reached maximum request limit"}
        assert "retry-after" not in paprika[2].headers


@pytest.mark.parametrize(("rate", "expect_all"), [(1.0, True), (0.3, False)])
def test_flapping_fails_a_share_of_requests(
    upstream: FakeUpstream, rate: float, expect_all: bool
) -> None:
    upstream.flap(rate=rate, seed=7)
    with httpx.Client(timeout=5) as client:
        outcomes = [_get(client, f"{upstream.coingecko_url}/ping") for _ in range(40)]
    ok = sum(1 for o in outcomes if o == (200, None, {"gecko_says": "(V3) To the Moon!"}))
    assert ok == 0 if expect_all else 0 < ok < 40


def test_concurrent_requests_and_clean_restart() -> None:
    results: list[int] = []
    with FakeUpstream(coins(3), latency=(0.01, 0.03)) as upstream:
        url = f"{upstream.coinpaprika_url}/tickers"

        def worker() -> None:
            with httpx.Client(timeout=5) as c:
                results.append(c.get(url).status_code)

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * 16
    assert not [t for t in threading.enumerate() if t.name.startswith("fake-upstream")]
    with pytest.raises(RuntimeError):
        _ = upstream.coinpaprika_url


def _wait_held(upstream: FakeUpstream, source: str, count: int) -> None:
    for _ in range(500):
        if upstream.held(source) == count:
            return
        threading.Event().wait(0.01)
    pytest.fail(f"{upstream.held(source)} request(s) held, expected {count}")


def test_hold_keeps_requests_waiting_until_released(upstream: FakeUpstream) -> None:
    upstream.hold("coingecko", after=1)
    url = f"{upstream.coingecko_url}/ping"
    statuses: list[int] = []
    with httpx.Client(timeout=5) as client:
        assert client.get(url).status_code == 200  # the one let through
        waiting = threading.Thread(target=lambda: statuses.append(client.get(url).status_code))
        waiting.start()
        _wait_held(upstream, "coingecko", 1)
        assert client.get(f"{upstream.coinpaprika_url}/tickers").status_code == 200  # not held
        waiting.join(timeout=0.3)
        assert statuses == []  # still waiting at the gate
        upstream.release("coingecko")
        waiting.join(timeout=5)
        assert statuses == [200]
        assert upstream.held("coingecko") == 0
        assert client.get(url).status_code == 200  # released for good


def test_stop_releases_held_requests() -> None:
    answers: list[object] = []
    with FakeUpstream(coins(3)) as upstream:
        upstream.hold("coinpaprika")
        url = f"{upstream.coinpaprika_url}/tickers"

        def fetch() -> None:
            try:
                answers.append(httpx.get(url, timeout=5).status_code)
            except httpx.HTTPError as exc:
                answers.append(type(exc))

        waiting = threading.Thread(target=fetch)
        waiting.start()
        _wait_held(upstream, "coinpaprika", 1)
    waiting.join(timeout=5)
    assert not waiting.is_alive()
    assert len(answers) == 1  # answered or cut off, never left hanging
