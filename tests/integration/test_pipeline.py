"""End to end over real HTTP: all three sources against the local fake upstream, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.conftest import count_rows
from tests.fakes import FakeUpstream, advance, coins, write_history_csv

WORLD = coins(25)


@pytest.fixture
def upstream() -> Any:
    with FakeUpstream(WORLD) as server:
        yield server


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], upstream: FakeUpstream, tmp_path: Path
) -> Settings:
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, WORLD[:5], days=3, layout="kaggle")
    return make_settings(
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_base_url=upstream.coingecko_url,
        csv_path=csv_path,
        top_n=20,
    )


def _by_source(results: list[Any]) -> dict[str, Any]:
    return {r.source: r for r in results}


def _scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def test_full_pass_loads_every_source_and_unifies_bitcoin(
    settings: Settings, engine: Engine
) -> None:
    results = _by_source(run_pass(settings, engine))

    assert {name: r.status for name, r in results.items()} == {
        "coinpaprika": "success",
        "coingecko": "success",
        "csv": "success",
    }
    assert results["coinpaprika"].fetched == 20
    assert results["coingecko"].fetched == 20
    assert results["csv"].fetched == 15
    for r in results.values():
        assert r.fetched == r.loaded + r.unchanged + r.quarantined
    bitcoin_assets = _scalar(
        engine,
        "SELECT count(DISTINCT asset_id) FROM asset_source WHERE coin_id IN ('bitcoin', 'btc-bitcoin')",
    )
    assert bitcoin_assets == 1
    sources = _scalar(
        engine,
        "SELECT count(*) FROM unified_crypto WHERE asset_id = (SELECT asset_id FROM asset_source WHERE coin_id = 'bitcoin')",
    )
    assert sources == 3
    assert count_rows(engine, "raw_coinpaprika") == 20
    assert count_rows(engine, "raw_coingecko") == 20
    assert count_rows(engine, "raw_csv") == 15
    assert count_rows(engine, "price_history") == 20 + 20 + 15
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT source, status, fetched, loaded FROM etl_run ORDER BY source")
        ).all()
    assert [(r.source, r.status) for r in runs] == [
        ("coingecko", "success"),
        ("coinpaprika", "success"),
        ("csv", "success"),
    ]


def test_second_pass_with_unchanged_data_writes_nothing(settings: Settings, engine: Engine) -> None:
    run_pass(settings, engine)
    before = {
        t: count_rows(engine, t)
        for t in (
            "raw_coinpaprika",
            "raw_coingecko",
            "raw_csv",
            "price_history",
            "unified_crypto",
            "asset",
        )
    }
    history_before = _scalar(engine, "SELECT max(run_id) FROM price_history")

    results = _by_source(run_pass(settings, engine))

    assert results["coinpaprika"].unchanged == 20
    assert results["coinpaprika"].loaded == 0
    assert results["coingecko"].unchanged == 20
    assert results["coingecko"].loaded == 0
    assert results["csv"].fetched == 0  # the checkpoint says the file was fully read
    after = {t: count_rows(engine, t) for t in before}
    assert after == before
    # the version moves with run bookkeeping, but no served record came from the second pass
    assert _scalar(engine, "SELECT max(run_id) FROM price_history") == history_before
    assert (
        _scalar(engine, "SELECT count(*) FROM unified_crypto WHERE run_id > :r", r=history_before)
        == 0
    )


def test_changed_price_updates_unified_and_adds_one_history_point(
    settings: Settings, engine: Engine, upstream: FakeUpstream
) -> None:
    run_pass(settings, engine)
    moved = advance(WORLD, minutes=5, seed=1)
    moved_bitcoin = [c for c in moved if c.gecko_id == "bitcoin"]
    upstream.set_coins([moved_bitcoin[0] if c.gecko_id == "bitcoin" else c for c in WORLD])

    results = _by_source(run_pass(settings, engine, sources=["coingecko", "coinpaprika"]))

    assert results["coingecko"].loaded == 1
    assert results["coingecko"].unchanged == 19
    assert results["coinpaprika"].loaded == 1
    price = _scalar(engine, "SELECT price_usd FROM unified_crypto WHERE coin_id = 'bitcoin'")
    assert price == pytest.approx(moved_bitcoin[0].price, rel=1e-9)
    points = _scalar(
        engine,
        "SELECT count(*) FROM price_history ph JOIN asset_source a ON a.asset_id = ph.asset_id AND a.source = ph.source WHERE a.coin_id = 'bitcoin'",
    )
    assert points == 2
    assert count_rows(engine, "raw_coingecko") == 21


def test_checkpoint_tracks_newest_update_and_stays_put_on_empty_run(
    settings: Settings, engine: Engine, upstream: FakeUpstream
) -> None:
    run_pass(settings, engine, sources=["coingecko"])
    first = _scalar(engine, "SELECT last_value FROM etl_checkpoint WHERE source = 'coingecko'")
    newest = max(c.updated_at for c in WORLD[:20])
    assert first.startswith(newest.isoformat()[:19])

    upstream.gecko_rows = []
    results = run_pass(settings, engine, sources=["coingecko"])

    assert results[0].status == "success"
    assert results[0].fetched == 0
    assert (
        _scalar(engine, "SELECT last_value FROM etl_checkpoint WHERE source = 'coingecko'") == first
    )


def test_replay_rebuilds_unified_and_history_without_network(
    settings: Settings, engine: Engine, upstream: FakeUpstream
) -> None:
    from kasparro.pipeline.runner import replay_sources

    run_pass(settings, engine)
    unified = count_rows(engine, "unified_crypto")
    history = count_rows(engine, "price_history")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM price_history"))
        conn.execute(sa.text("UPDATE unified_crypto SET price_usd = -1"))
    requests_before = len(upstream.requests())

    results = replay_sources(settings, engine)

    assert [r.status for r in results] == ["success", "success", "success"]
    assert len(upstream.requests()) == requests_before
    assert count_rows(engine, "unified_crypto") == unified
    assert count_rows(engine, "price_history") == history
    assert _scalar(engine, "SELECT count(*) FROM unified_crypto WHERE price_usd < 0") == 0
