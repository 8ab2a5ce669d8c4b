"""Compatibility: the real recorded upstream responses in ../shared/fixtures/recorded, through the pipeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.conftest import RECORDED_DIR, count_rows
from tests.fakes import FakeUpstream

pytestmark = pytest.mark.skipif(
    not RECORDED_DIR.is_dir(), reason="recorded fixtures folder not present"
)


def _files(pattern: str) -> list[Path]:
    return (
        sorted(p for p in RECORDED_DIR.glob(pattern) if "response_meta" not in p.name)
        if RECORDED_DIR.is_dir()
        else []
    )


@pytest.mark.parametrize("path", _files("coingecko_markets_*.json"), ids=lambda p: p.stem)
def test_recorded_coingecko_markets_load(
    path: Path, make_settings: Callable[..., Settings], engine: Engine
) -> None:
    rows = json.loads(path.read_text())
    with FakeUpstream([]) as upstream:
        upstream.gecko_rows = rows
        settings = make_settings(coingecko_base_url=upstream.coingecko_url, top_n=len(rows))
        result = run_pass(settings, engine, sources=["coingecko"])[0]
    assert result.fetched == len(rows)
    assert result.quarantined == 0, "every recorded CoinGecko row is valid"
    assert result.loaded == len({r["id"] for r in rows})
    assert count_rows(engine, "raw_coingecko") == result.loaded
    with engine.connect() as conn:
        usdt = conn.execute(
            sa.text("SELECT count(DISTINCT asset_id) FROM unified_crypto WHERE symbol = 'USDT'")
        ).scalar_one()
    assert usdt == len(
        {r["id"] for r in rows if r["symbol"] == "usdt"}
    )  # duplicate symbols are never merged


@pytest.mark.parametrize("path", _files("coinpaprika_tickers_*.json"), ids=lambda p: p.stem)
def test_recorded_coinpaprika_tickers_load(
    path: Path, make_settings: Callable[..., Settings], engine: Engine
) -> None:
    rows = json.loads(path.read_text())
    usd_rows = [r for r in rows if "USD" in r.get("quotes", {})]
    with FakeUpstream([]) as upstream:
        upstream.paprika_rows = rows
        settings = make_settings(coinpaprika_base_url=upstream.coinpaprika_url, top_n=len(rows))
        result = run_pass(settings, engine, sources=["coinpaprika"])[0]
    assert result.fetched == len(rows)
    assert result.loaded == len(usd_rows)
    assert result.quarantined == len(rows) - len(
        usd_rows
    )  # the KRW recording has no USD quote: quarantined, counted
    assert count_rows(engine, "quarantine") == result.quarantined
    assert result.status == ("success" if not result.quarantined else "partial")
    with engine.connect() as conn:
        assets = conn.execute(sa.text("SELECT count(*) FROM asset")).scalar_one()
        mapped = conn.execute(
            sa.text("SELECT count(*) FROM asset_source WHERE source = 'coinpaprika'")
        ).scalar_one()
    assert mapped == len(usd_rows)
    assert assets == len(usd_rows)  # 100+ duplicated symbols, still one asset per coin id


@pytest.mark.parametrize("path", _files("*.csv"), ids=lambda p: p.stem)
def test_recorded_history_csv_loads(
    path: Path, make_settings: Callable[..., Settings], engine: Engine
) -> None:
    lines = sum(1 for line in path.read_text().splitlines()[1:] if line.strip())
    result = run_pass(make_settings(csv_path=path), engine, sources=["csv"])[0]
    assert (result.fetched, result.loaded, result.quarantined) == (lines, lines, 0)
    assert count_rows(engine, "price_history") == lines
    with engine.connect() as conn:
        nan = conn.execute(
            sa.text("SELECT count(*) FROM price_history WHERE market_cap_usd = 0")
        ).scalar_one()
    assert nan == 0  # the history layout's 0.0 market cap means unknown: stored as NULL
