"""Upstream faults, each isolated to its source: the other sources' runs succeed regardless."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.fakes import (
    FakeUpstream,
    Fault,
    coins,
    drop_field,
    rename_field,
    set_field,
    write_history_csv,
)

WORLD = coins(12)
OTHER = {"coingecko": "coinpaprika", "coinpaprika": "coingecko"}


@pytest.fixture
def upstream() -> Any:
    with FakeUpstream(WORLD) as server:
        yield server


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], upstream: FakeUpstream, tmp_path: Path
) -> Settings:
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, WORLD[:3], days=2, layout="unified")
    return make_settings(
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_base_url=upstream.coingecko_url,
        csv_path=csv_path,
        top_n=10,
        http_timeout=0.5,
    )


def _drift(engine: Engine, source: str) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT field, kind FROM schema_drift WHERE source = :s"), {"s": source}
        ).all()
    return {(r.field, r.kind) for r in rows}


# (source, faults, expected status, expected loaded, expected quarantined, min retries)
TRANSPORT_CASES = [
    ("coingecko", [Fault.http(429, retry_after=0.05)], "success", 10, 0, 1),
    ("coingecko", [Fault.http(429)], "success", 10, 0, 1),
    ("coinpaprika", [Fault.http(429)], "success", 10, 0, 1),
    ("coinpaprika", [Fault.http(500)], "success", 10, 0, 1),
    ("coingecko", [Fault.http(502), Fault.http(503)], "success", 10, 0, 2),
    ("coinpaprika", [Fault.timeout(2.0)], "success", 10, 0, 1),
    ("coingecko", [Fault.html(503)], "success", 10, 0, 1),
    ("coingecko", [Fault.html(200)], "success", 10, 0, 1),
    ("coinpaprika", [Fault.truncated()], "success", 10, 0, 1),
    ("coinpaprika", [Fault.reset()], "success", 10, 0, 1),
    ("coingecko", [Fault.http(500)] * 3, "failed", 0, 0, 2),
    ("coinpaprika", [Fault.http(403)], "failed", 0, 0, 0),
    ("coingecko", [Fault.http(401)], "failed", 0, 0, 0),
    ("coingecko", [Fault.empty()], "success", 0, 0, 0),
    ("coinpaprika", [Fault.empty()], "success", 0, 0, 0),
]


@pytest.mark.parametrize(
    ("source", "faults", "status", "loaded", "quarantined", "min_retries"), TRANSPORT_CASES
)
def test_transport_faults_stay_in_their_source(
    settings: Settings,
    engine: Engine,
    upstream: FakeUpstream,
    source: str,
    faults: list[Fault],
    status: str,
    loaded: int,
    quarantined: int,
    min_retries: int,
) -> None:
    upstream.inject(source, *faults)

    results = {r.source: r for r in run_pass(settings, engine)}

    mine = results[source]
    assert (mine.status, mine.loaded, mine.quarantined) == (status, loaded, quarantined)
    assert mine.retries >= min_retries
    assert mine.fetched == mine.loaded + mine.unchanged + mine.quarantined
    if status == "failed":
        assert mine.error
        with engine.connect() as conn:
            stored = conn.execute(
                sa.text("SELECT status, error FROM etl_run WHERE id = :i"), {"i": mine.run_id}
            ).one()
        assert stored.status == "failed"
        assert stored.error == mine.error
    assert results[OTHER[source]].status == "success"
    assert results["csv"].status == "success"


def test_fatal_error_keeps_upstream_message_and_sends_one_request(
    settings: Settings, engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.inject("coingecko", Fault.http(401))

    result = run_pass(settings, engine, sources=["coingecko"])[0]

    assert "API Key Missing" in (result.error or "")
    assert len(upstream.requests("coingecko")) == 1


def test_retry_after_is_honoured_within_the_cap(
    settings: Settings, engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.inject("coingecko", Fault.http(429, retry_after=0.3))

    run_pass(settings, engine, sources=["coingecko"])

    first, second = upstream.requests("coingecko")[:2]
    assert (
        second.at - first.at >= 0.2
    )  # the cap in these settings is 0.2 s; Retry-After asked for 0.3 s


# (source, mutator, expected loaded, expected quarantined, drift expected to include)
SHAPE_CASES = [
    ("coingecko", drop_field("max_supply"), 10, 0, {("max_supply", "missing")}),
    (
        "coingecko",
        rename_field("current_price", "price"),
        10,
        0,
        {("current_price", "missing"), ("price", "new")},
    ),
    ("coingecko", set_field("current_price", "12.5"), 10, 0, {("current_price", "type_changed")}),
    ("coingecko", set_field("current_price", "n/a"), 0, 10, {("current_price", "type_changed")}),
    ("coingecko", drop_field("id"), 0, 10, {("id", "missing")}),
    ("coinpaprika", drop_field("circulating_supply"), 10, 0, {("circulating_supply", "missing")}),
    (
        "coinpaprika",
        set_field("quotes.USD.price", {"value": 1}),
        0,
        10,
        {("quotes.USD.price", "type_changed")},
    ),
    (
        "coinpaprika",
        rename_field("symbol", "ticker"),
        0,
        10,
        {("symbol", "missing"), ("ticker", "new")},
    ),
]


@pytest.mark.parametrize(("source", "mutator", "loaded", "quarantined", "drift"), SHAPE_CASES)
def test_schema_changes_are_recorded_and_bad_records_quarantined(
    settings: Settings,
    engine: Engine,
    upstream: FakeUpstream,
    source: str,
    mutator: Any,
    loaded: int,
    quarantined: int,
    drift: set[tuple[str, str]],
) -> None:
    upstream.inject(source, Fault.mutated(mutator))

    results = {r.source: r for r in run_pass(settings, engine)}

    mine = results[source]
    assert (mine.loaded, mine.quarantined) == (loaded, quarantined)
    assert mine.status == ("partial" if quarantined else "success")
    assert drift <= _drift(engine, source)
    assert mine.drift_events == len(
        _drift(engine, source)
    )  # once per change per run, not per record
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*), min(reason) FROM quarantine WHERE source = :s"), {"s": source}
        ).one()
    assert stored[0] == quarantined
    if quarantined:
        assert stored[1]
    assert results[OTHER[source]].status == "success"


def test_sources_do_not_stop_each_other_when_all_fail(
    settings: Settings, engine: Engine, upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.inject("coingecko", Fault.http(404))
    upstream.inject("coinpaprika", Fault.http(402))
    results = {
        r.source: r for r in run_pass(settings.model_copy(update={"sequential": True}), engine)
    }
    assert results["coingecko"].status == "failed"
    assert results["coinpaprika"].status == "failed"
    assert results["csv"].status == "success"
