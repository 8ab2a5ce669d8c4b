"""Schema drift one change at a time and all together, over several pages and passes (API sources)
or thousands of rows under a drifted CSV header: the run goes on, each change is recorded once per
run, unusable records are quarantined, the counts reconcile and ``kasparro db verify`` passes."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.fakes import FakeUpstream, Fault, advance, coins, drop_field, rename_field, set_field
from tests.fakes.data import UNIFIED_HEADER
from tests.fakes.faults import Row, RowMutator
from tests.reliability.csvgen import append_rows, reconcile
from tests.reliability.helpers import duplicates, rows, scalar

WORLD = coins(30)
PAGES = 3  # CoinGecko: 30 coins, 10 per page; every page carries the same drift


def _all(*mutators: RowMutator) -> RowMutator:
    def apply(row: Row) -> Row | None:
        return reduce(lambda r, m: m(r) if r is not None else None, mutators, row)

    return apply


GECKO_REMOVED = drop_field("max_supply")
GECKO_RENAMED = rename_field("total_volume", "volume")
GECKO_RETYPED = set_field("market_cap", "1234.5")
GECKO_UNUSABLE = set_field("current_price", {"usd": 1})
PAPRIKA_REMOVED = drop_field("max_supply")
PAPRIKA_RENAMED = rename_field("rank", "position")
PAPRIKA_RETYPED = set_field("quotes.USD.volume_24h", "12")

# (source, mutator, loaded per pass, quarantined per pass, drift that must be recorded)
CASES = [
    ("coingecko", GECKO_REMOVED, 30, 0, {("max_supply", "missing")}),
    ("coingecko", GECKO_RENAMED, 30, 0, {("total_volume", "missing"), ("volume", "new")}),
    ("coingecko", GECKO_RETYPED, 30, 0, {("market_cap", "type_changed")}),
    ("coingecko", GECKO_UNUSABLE, 0, 30, {("current_price", "type_changed")}),
    (
        "coingecko",
        _all(GECKO_REMOVED, GECKO_RENAMED, GECKO_RETYPED),
        30,
        0,
        {
            ("max_supply", "missing"),
            ("total_volume", "missing"),
            ("volume", "new"),
            ("market_cap", "type_changed"),
        },
    ),
    (
        "coingecko",
        _all(GECKO_REMOVED, GECKO_RENAMED, GECKO_RETYPED, GECKO_UNUSABLE),
        0,
        30,
        {
            ("max_supply", "missing"),
            ("volume", "new"),
            ("market_cap", "type_changed"),
            ("current_price", "type_changed"),
        },
    ),
    ("coinpaprika", PAPRIKA_REMOVED, 30, 0, {("max_supply", "missing")}),
    ("coinpaprika", PAPRIKA_RENAMED, 30, 0, {("rank", "missing"), ("position", "new")}),
    ("coinpaprika", PAPRIKA_RETYPED, 30, 0, {("quotes.USD.volume_24h", "type_changed")}),
    (
        "coinpaprika",
        _all(PAPRIKA_REMOVED, PAPRIKA_RENAMED, PAPRIKA_RETYPED),
        30,
        0,
        {
            ("max_supply", "missing"),
            ("rank", "missing"),
            ("position", "new"),
            ("quotes.USD.volume_24h", "type_changed"),
        },
    ),
]
IDS = ["gecko-removed", "gecko-renamed", "gecko-retyped", "gecko-unusable", "gecko-all-usable",
       "gecko-all-unusable", "paprika-removed", "paprika-renamed", "paprika-retyped", "paprika-all"]  # fmt: skip


@pytest.mark.parametrize(("source", "mutator", "loaded", "quarantined", "drift"), CASES, ids=IDS)
def test_drift_is_recorded_once_per_change_per_run(
    make_settings: Callable[..., Settings],
    engine: Engine,
    tmp_path: Path,
    source: str,
    mutator: RowMutator,
    loaded: int,
    quarantined: int,
    drift: set[tuple[str, str]],
) -> None:
    other = "coinpaprika" if source == "coingecko" else "coingecko"
    with FakeUpstream(WORLD) as upstream:
        settings = make_settings(
            sources=["coinpaprika", "coingecko"],
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            top_n=30,
            coingecko_per_page=10,
        )
        passes = []
        for number in range(2):  # the same drift in two passes: recorded in each run, once
            if number:
                upstream.set_coins(advance(WORLD, minutes=5, seed=1))
            upstream.inject(
                source, *[Fault.mutated(mutator)] * (PAGES if source == "coingecko" else 1)
            )
            passes.append({r.source: r for r in run_pass(settings, engine)})

    assert passes[0][source].loaded == loaded
    for results in passes:
        mine = results[source]
        assert mine.status == ("partial" if quarantined else "success"), mine
        assert (mine.loaded + mine.unchanged, mine.quarantined) == (loaded, quarantined)
        reconcile(engine, mine, served=len(WORLD))
        reconcile(engine, results[other], served=len(WORLD))
        recorded = rows(
            engine,
            "SELECT field, kind, count(*) FROM schema_drift WHERE run_id = :r GROUP BY field, kind",
            r=mine.run_id,
        )
        kinds = {(f, k) for f, k, _ in recorded}
        assert drift <= kinds, kinds
        assert all(
            n == 1 for _, _, n in recorded
        )  # once per change per run, not per page or record
        assert mine.drift_events == len(recorded)
        stored = rows(engine, "SELECT reason FROM quarantine WHERE run_id = :r", r=mine.run_id)
        assert len(stored) == quarantined
        assert all(reason for (reason,) in stored)
        assert results[other].status == "success"  # the other source is untouched
        assert rows(
            engine, "SELECT count(*) FROM schema_drift WHERE run_id = :r", r=results[other].run_id
        ) == [(0,)]
    assert duplicates(engine) == {}


def _without(column: str) -> list[str]:
    return [c for c in UNIFIED_HEADER if c != column]


def _renamed(column: str, to: str) -> list[str]:
    return [to if c == column else c for c in UNIFIED_HEADER]


CSV_ROWS = 3000  # per pass, in three batches of the default 1000
# (header, renamed columns' sources, rows load, drift recorded, quarantine reason)
CSV_CASES = [
    (_without("price_usd"), {}, False, {("price_usd", "missing")}, "price_usd: Field required"),
    (_without("symbol"), {}, False, {("symbol", "missing")}, "symbol: Field required"),
    ([*UNIFIED_HEADER, "exchange"], {}, True, {("exchange", "new")}, None),
    (
        _renamed("price_usd", "cost"),
        {"cost": "price_usd"},
        False,
        {("price_usd", "missing"), ("cost", "new")},
        "price_usd: Field required",
    ),
    (_renamed("price_usd", "Price"), {"Price": "price_usd"}, True, set(), None),  # an alias
]
CSV_IDS = ["csv-missing-price", "csv-missing-symbol", "csv-extra", "csv-renamed", "csv-alias"]


@pytest.mark.parametrize(("header", "renamed", "load", "drift", "reason"), CSV_CASES, ids=CSV_IDS)
def test_csv_header_drift_is_recorded_once_per_change_per_run(
    make_settings: Callable[..., Settings],
    engine: Engine,
    tmp_path: Path,
    header: list[str],
    renamed: dict[str, str],
    load: bool,
    drift: set[tuple[str, str]],
    reason: str | None,
) -> None:
    path = tmp_path / "drifted.csv"
    settings = make_settings(csv_path=path)
    next_row = 0
    for _ in range(2):  # the file grows under the same header: the drift is recorded in each run
        next_row = append_rows(path, WORLD, next_row, CSV_ROWS, header=header, renamed=renamed)
        (result,) = run_pass(settings, engine, sources=["csv"])

        reconcile(engine, result, served=CSV_ROWS)
        expected = (CSV_ROWS, 0) if load else (0, CSV_ROWS)
        assert (result.loaded, result.quarantined) == expected, result
        recorded = rows(
            engine,
            "SELECT field, kind, count(*) FROM schema_drift WHERE run_id = :r GROUP BY field, kind",
            r=result.run_id,
        )
        assert {(f, k) for f, k, _ in recorded} == drift
        assert all(n == 1 for _, _, n in recorded), recorded  # once per run, not per row or batch
        assert result.drift_events == len(drift)
        if reason is not None:
            reasons = rows(
                engine,
                "SELECT DISTINCT reason FROM quarantine WHERE run_id = :r",
                r=result.run_id,
            )
            assert [r for (r,) in reasons] == [reason]
    stored = (
        scalar(engine, "SELECT count(*) FROM price_history"),
        scalar(engine, "SELECT count(*) FROM quarantine"),
    )
    assert stored == ((2 * CSV_ROWS, 0) if load else (0, 2 * CSV_ROWS))
    assert duplicates(engine) == {}
