"""The Alembic migrations are the only source of the schema: they match the models on both
databases, go down and up again, and several processes may upgrade at once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kasparro.db.engine import alembic_config, current_revision, make_engine, upgrade_schema
from kasparro.db.models import Base
from tests.conftest import empty_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue(
        "postgres_url"
    )  # skips or fails exactly like the other PostgreSQL tests
    with empty_postgres_database("kasparro_mig") as url:
        yield url


def test_migrations_produce_exactly_the_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert "unified_crypto" not in sa.inspect(engine).get_table_names()
    upgrade_schema(engine)
    assert "unified_crypto" in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT version FROM data_version WHERE id = 1")).scalar_one() == 0
        )
    engine.dispose()


def test_concurrent_upgrades_are_serialized(empty_url: str) -> None:
    def upgrade() -> str | None:
        engine = make_engine(empty_url)
        try:
            upgrade_schema(engine)
            return current_revision(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        revisions = list(pool.map(lambda _: upgrade(), range(4)))

    assert len(set(revisions)) == 1
    assert revisions[0] is not None
    engine = make_engine(empty_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM data_version")).scalar_one() == 1
    engine.dispose()


def test_symbols_stored_by_an_older_revision_are_upper_cased(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade_schema(engine, "0002")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO asset (id, symbol, name, match_key, flagged, created_at) "
                "VALUES (1, 'btc', 'Bitcoin', 'BTC|bitcoin', false, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO asset_source (asset_id, source, coin_id, symbol, name, created_at) "
                "VALUES (1, 'coingecko', 'bitcoin', 'btc', 'Bitcoin', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO unified_crypto (asset_id, source, coin_id, symbol, name, ingested_at) "
                "VALUES (1, 'coingecko', 'bitcoin', 'btc', 'Bitcoin', :t)"
            ),
            {"t": now},
        )
    upgrade_schema(engine)
    with engine.connect() as conn:
        symbols = [
            conn.execute(sa.text(f"SELECT symbol FROM {table}")).scalar_one()
            for table in ("asset", "asset_source", "unified_crypto")
        ]
    engine.dispose()
    assert symbols == ["BTC", "BTC", "BTC"]


def test_raw_payloads_stored_before_0004_are_kept_and_keyed_per_coin(empty_url: str) -> None:
    """0004 keeps every raw row and moves uniqueness to (coin id, payload hash): the same hash
    under another coin is accepted, under the same coin refused."""
    engine = make_engine(empty_url)
    upgrade_schema(engine, "0003")
    insert = sa.text(
        "INSERT INTO raw_csv (coin_id, payload, payload_hash, ingested_at) "
        "VALUES (:coin, '{}', :digest, '2026-01-01 00:00:00')"
    )
    with engine.begin() as conn:
        conn.execute(insert, [{"coin": f"c{i}", "digest": f"h{i}"} for i in range(3)])
    upgrade_schema(engine)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM raw_csv")).scalar_one() == 3
        conn.execute(insert, {"coin": "other", "digest": "h0"})
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"coin": "c0", "digest": "h0"})
    engine.dispose()
