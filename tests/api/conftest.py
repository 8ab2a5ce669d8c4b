"""API test fixtures: a seeded market written with SQLAlchemy core, and TestClients over the real app."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from starlette.exceptions import StarletteDeprecationWarning

from kasparro.api import create_app
from kasparro.config import Settings
from kasparro.db.models import (
    Asset,
    AssetSource,
    CircuitBreaker,
    DataVersion,
    EtlRun,
    PriceHistory,
    Quarantine,
    RawCoinGecko,
    SchemaDrift,
    UnifiedCrypto,
)

with warnings.catch_warnings():
    # starlette's TestClient warns that it prefers httpx2; httpx is what the project depends on
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SOURCES = ("coinpaprika", "coingecko", "csv")
# symbol, name, base price, base market cap (None: unknown)
COINS: list[tuple[str, str, float | None, float | None]] = [
    ("BTC", "Bitcoin", 60000.0, 1.2e12),
    ("ETH", "Ethereum", 3000.0, 3.6e11),
    ("USDT", "Tether", 1.0, 1.1e11),
    ("SOL", "Solana", 150.0, 7.0e10),
    ("DOGE", "Dogecoin", 0.15, 2.2e10),
    ("NEW", "Newcoin", None, None),
    ("BTC", "Bitcoin Fork", 2.0, 1.0e6),
]
SOURCE_FACTOR = {"coinpaprika": 1.0, "coingecko": 1.01, "csv": 0.99}


@dataclass
class Seeded:
    """Ids of what :func:`seed_market` wrote."""

    assets: list[int] = field(default_factory=list)
    runs: dict[str, list[int]] = field(default_factory=dict)
    unified_rows: int = 0


def _insert(conn: sa.Connection, model: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(model), rows)


def bump_version(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(DataVersion)
            .where(DataVersion.id == 1)
            .values(version=DataVersion.version + 1)
        )


def seed_market(engine: Engine) -> Seeded:
    """Assets known by every source, two runs per source, price history, drift, quarantine, breakers."""
    seeded = Seeded()
    with engine.begin() as conn:
        run_id = 0
        for source in SOURCES:
            seeded.runs[source] = []
            for index, status in enumerate(
                ("success", "failed" if source == "coingecko" else "success")
            ):
                run_id += 1
                started = NOW - timedelta(hours=6 * (1 - index), minutes=5)
                conn.execute(
                    sa.insert(EtlRun).values(
                        id=run_id,
                        source=source,
                        status=status,
                        trigger="schedule",
                        started_at=started,
                        finished_at=started + timedelta(seconds=3),
                        duration_seconds=3.0 + index,
                        fetched=7,
                        loaded=7 - index,
                        unchanged=index,
                        quarantined=index,
                        drift_events=index,
                        error="boom" if status == "failed" else None,
                    )
                )
                seeded.runs[source].append(run_id)
        for position, (symbol, name, price, cap) in enumerate(COINS, start=1):
            conn.execute(
                sa.insert(Asset).values(
                    id=position,
                    symbol=symbol,
                    name=name,
                    match_key=f"{symbol}|{name}".lower(),
                    flagged=False,
                )
            )
            seeded.assets.append(position)
            for source in SOURCES:
                coin_id = f"{name.lower().replace(' ', '-')}-{source}"
                factor = SOURCE_FACTOR[source]
                first_run, last_run = seeded.runs[source]
                conn.execute(
                    sa.insert(AssetSource).values(
                        asset_id=position, source=source, coin_id=coin_id, symbol=symbol, name=name
                    )
                )
                conn.execute(
                    sa.insert(UnifiedCrypto).values(
                        asset_id=position,
                        source=source,
                        coin_id=coin_id,
                        symbol=symbol,  # upper-case, as every mapper stores it
                        name=name,
                        rank=position if price is not None else None,
                        price_usd=price * factor if price is not None else None,
                        market_cap_usd=cap * factor if cap is not None else None,
                        volume_24h_usd=1000.0 * position,
                        percent_change_24h=0.5 * position,
                        source_updated_at=NOW,
                        ingested_at=NOW - timedelta(minutes=position),
                        run_id=last_run,
                    )
                )
                seeded.unified_rows += 1
                if price is None:
                    continue
                history = [
                    # first run: the old price; second run: 5% higher for BTC-like coins, unchanged else
                    (first_run, NOW - timedelta(hours=6), price),
                    (
                        last_run,
                        NOW - timedelta(minutes=30),
                        price * (1.05 if position % 2 else 1.0),
                    ),
                ]
                if position == 1 and source == "coinpaprika":
                    history.append((last_run, NOW - timedelta(minutes=20), price * 1.1))
                _insert(
                    conn,
                    PriceHistory,
                    [
                        {
                            "asset_id": position,
                            "source": source,
                            "observed_at": at,
                            "price_usd": p * factor,
                            "volume_24h_usd": 10.0 * position,
                            "run_id": run,
                        }
                        for run, at, p in history
                    ],
                )
        # an asset only the second csv run saw
        conn.execute(
            sa.insert(Asset).values(
                id=len(COINS) + 1,
                symbol="LATE",
                name="Latecomer",
                match_key="late|latecomer",
                flagged=True,
                flag_reason="ambiguous",
            )
        )
        seeded.assets.append(len(COINS) + 1)
        _insert(
            conn,
            PriceHistory,
            [
                {
                    "asset_id": len(COINS) + 1,
                    "source": "csv",
                    "observed_at": NOW,
                    "price_usd": 5.0,
                    "run_id": seeded.runs["csv"][1],
                }
            ],
        )
        _insert(
            conn,
            SchemaDrift,
            [
                {
                    "source": "coingecko",
                    "run_id": seeded.runs["coingecko"][1],
                    "field": "market_cap",
                    "kind": "type_changed",
                    "expected": "number",
                    "observed": "string",
                    "sample_value": "12",
                    "detected_at": NOW,
                },
                {
                    "source": "coingecko",
                    "run_id": seeded.runs["coingecko"][1],
                    "field": "roi",
                    "kind": "new",
                    "expected": None,
                    "observed": "object",
                    "sample_value": None,
                    "detected_at": NOW,
                },
                {
                    "source": "csv",
                    "run_id": seeded.runs["csv"][1],
                    "field": "volume",
                    "kind": "missing",
                    "expected": "number",
                    "observed": None,
                    "sample_value": None,
                    "detected_at": NOW,
                },
            ],
        )
        _insert(
            conn,
            Quarantine,
            [
                {
                    "source": "coingecko",
                    "run_id": seeded.runs["coingecko"][1],
                    "coin_id": "bad",
                    "record": {"id": "bad"},
                    "errors": [{"msg": "bad price"}],
                    "reason": "validation",
                    "created_at": NOW,
                },
            ],
        )
        _insert(
            conn,
            RawCoinGecko,
            [
                {
                    "run_id": seeded.runs["coingecko"][0],
                    "coin_id": f"c{i}",
                    "payload": {"i": i},
                    "payload_hash": f"h{i}",
                    "ingested_at": NOW,
                }
                for i in range(4)
            ],
        )
        _insert(
            conn,
            CircuitBreaker,
            [
                {
                    "source": "coingecko",
                    "state": "open",
                    "consecutive_failures": 3,
                    "opened_at": NOW,
                    "updated_at": NOW,
                },
            ],
        )
        if engine.dialect.name == "postgresql":
            for table in ("etl_run", "asset"):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )
        conn.execute(
            sa.update(DataVersion)
            .where(DataVersion.id == 1)
            .values(version=DataVersion.version + 1)
        )
    return seeded


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_market(engine)


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(make_settings: Callable[..., Settings]) -> Iterator[ClientFactory]:
    """Build a TestClient over ``create_app`` (its own reader engine, lifespan run) with setting
    overrides. The rate limiter is off unless a test sets ``rate_limit_per_minute``."""
    clients: list[TestClient] = []

    def factory(*, engine: Engine | None = None, **overrides: Any) -> TestClient:
        overrides.setdefault("rate_limit_per_minute", 0)
        client = TestClient(create_app(make_settings(**overrides), engine=engine))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()
