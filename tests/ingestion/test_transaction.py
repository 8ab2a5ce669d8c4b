"""Transactions that span batches: what commits when the run ends, stops, or fails midway."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.models import EtlCheckpoint
from kasparro.exceptions import RetriableSourceError
from kasparro.ingestion.base import FetchedBatch
from kasparro.ingestion.coingecko import CoinGeckoIngestion
from kasparro.ingestion.transaction import SpanningTransaction
from tests.conftest import count_rows
from tests.fakes import advance, coingecko_market, coins

WORLD = coins(60)
RUN_BUMPS = 2  # starting and finishing a run move the data version too (the API serves runs)


def _pages(world: list[Any]) -> list[list[dict[str, Any]]]:
    return [[coingecko_market(c) for c in world[i : i + 10]] for i in range(0, len(world), 10)]


class ScriptedGecko(CoinGeckoIngestion):
    """The real CoinGecko source fed pages from a script; ``after_page`` runs after each page
    is handed over (it may set the stop event or raise, as an upstream would fail)."""

    after_page: Callable[[int, CoinGeckoIngestion], None] = staticmethod(lambda page, src: None)
    pages = _pages(WORLD)

    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        for number, page in enumerate(self.pages, start=1):
            yield FetchedBatch(list(page))
            self.after_page(number, self)


def _run(settings: Settings, engine: Engine, after_page: Any = None, world: Any = WORLD) -> Any:
    source = ScriptedGecko(settings, engine)
    source.pages = _pages(world)
    if after_page is not None:
        source.after_page = after_page
    return source.run()


def _data_version(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT version FROM data_version")).scalar_one())


@pytest.mark.parametrize(("interval", "commits"), [(0.0, 6), (60.0, 1)])
def test_a_run_commits_every_batch_or_once_per_interval(
    make_settings: Callable[..., Settings], engine: Engine, interval: float, commits: int
) -> None:
    """Measured on a second run over known coins: on PostgreSQL a batch that creates assets
    always commits at once."""
    assert _run(make_settings(batch_size=10), engine).loaded == 60
    settings = make_settings(batch_size=10, commit_interval=interval)
    before = _data_version(engine)
    result = _run(settings, engine, world=advance(WORLD, minutes=5))
    assert (result.status, result.fetched) == ("success", 60)
    assert result.loaded > 50
    assert _data_version(engine) - before == commits + RUN_BUMPS
    assert count_rows(engine, "raw_coingecko") == 60 + result.loaded
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT fetched, loaded FROM etl_run ORDER BY id DESC")
        ).first()
    assert tuple(stored or ()) == (60, result.loaded)


def test_postgresql_commits_each_batch_that_created_assets(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    before = _data_version(engine)
    assert _run(make_settings(batch_size=10, commit_interval=60), engine).loaded == 60
    commits = 6 if engine.dialect.name == "postgresql" else 1
    assert _data_version(engine) - before == commits + RUN_BUMPS


def test_a_failing_upstream_keeps_what_the_open_transaction_holds(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    def fail_after_three(page: int, _source: CoinGeckoIngestion) -> None:
        if page == 3:
            raise RetriableSourceError("upstream went away")

    result = _run(make_settings(batch_size=10, commit_interval=60), engine, fail_after_three)
    assert (result.status, result.loaded) == ("partial", 30)
    assert "upstream went away" in (result.error or "")
    assert count_rows(engine, "raw_coingecko") == count_rows(engine, "unified_crypto") == 30
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT loaded FROM etl_run")).scalar_one() == 30
        assert conn.execute(sa.text("SELECT count(*) FROM etl_checkpoint")).scalar_one() == 1


def test_stopping_commits_the_batches_in_flight(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    stop = threading.Event()

    def stop_after_two(page: int, _source: CoinGeckoIngestion) -> None:
        if page == 2:
            stop.set()

    source = ScriptedGecko(make_settings(batch_size=10, commit_interval=60), engine, stop=stop)
    source.after_page = stop_after_two
    result = source.run()
    assert (result.status, result.loaded) == ("interrupted", 20)
    assert count_rows(engine, "raw_coingecko") == count_rows(engine, "price_history") == 20


def test_a_database_error_rolls_back_the_open_transaction_and_nothing_else(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    """A second run over known coins (no new assets, so batches share transactions on both
    databases): batches 1-2 commit one by one, batches 3-4 share a transaction that fails at
    batch 4. The run fails; batches 1-2 stay, and the counters say so."""
    assert _run(make_settings(batch_size=10), engine).loaded == 60

    def break_on_four(page: int, source: CoinGeckoIngestion) -> None:
        if page == 2:
            source._transaction.interval = 60  # from now on, batches share one transaction
        if page == 3:  # batch 4 is written next: make its first statement fail
            source.raw_table = sa.Table("no_such_table", sa.MetaData(), sa.Column("id", sa.Integer))

    settings = make_settings(batch_size=10, commit_interval=0)
    result = _run(settings, engine, break_on_four, world=advance(WORLD, minutes=5))
    assert result.status == "failed"
    assert "database error" in (result.error or "")
    first_two = result.loaded  # the changed coins among batches 1-2
    assert 15 < first_two <= 20
    assert (
        count_rows(engine, "raw_coingecko") == count_rows(engine, "price_history") == 60 + first_two
    )
    with engine.connect() as conn:
        second = conn.execute(
            sa.text("SELECT loaded, status FROM etl_run ORDER BY id DESC")
        ).first()
    assert tuple(second or ()) == (first_two, "failed")


def test_spanning_transaction_is_due_after_its_interval(engine: Engine) -> None:
    transaction = SpanningTransaction(engine, interval=0)
    assert not transaction.due()  # nothing open
    transaction.connection()
    assert transaction.due()
    transaction.rollback()
    assert not transaction.is_open
    waiting = SpanningTransaction(engine, interval=60)
    waiting.connection()
    assert not waiting.due()
    waiting.commit()
    assert not waiting.is_open


def test_an_http_source_never_waits_on_the_upstream_with_a_transaction_open(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    """Each page request finds the previous batches committed: a slow upstream (or a long
    Retry-After) must not hold SQLite's write lock or a PostgreSQL transaction meanwhile."""
    pages = _pages(WORLD)
    observed: list[tuple[bool, bool]] = []  # (transaction open, write lock free) per request
    settings = make_settings(batch_size=10, commit_interval=60, top_n=60, coingecko_per_page=10)

    def upstream(request: httpx.Request) -> httpx.Response:
        observed.append((source._transaction.is_open, _write_lock_free(settings)))
        page = int(request.url.params["page"])
        return httpx.Response(200, json=pages[page - 1] if page <= len(pages) else [])

    source = CoinGeckoIngestion(settings, engine, transport=httpx.MockTransport(upstream))
    result = source.run()
    assert (result.status, result.loaded) == ("success", 60)
    assert observed == [(False, True)] * 6


def _write_lock_free(settings: Settings) -> bool:
    if not settings.database_url.startswith("sqlite"):
        return True  # what matters there is covered by the transaction state
    probe = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
