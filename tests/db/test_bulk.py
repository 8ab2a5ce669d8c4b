"""The driver-level helpers of the ingest path, on both databases."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from sqlalchemy import Engine

from kasparro.db.bulk import BulkWriter
from kasparro.db.models import utcnow


def _asset(key: str) -> tuple[object, ...]:
    return (key.upper(), key, key, False, None, utcnow())


def test_insert_assets_returns_ids_of_new_keys_only(engine: Engine) -> None:
    with engine.begin() as conn:
        first = BulkWriter(conn).insert_assets([_asset("a|alpha"), _asset("b|beta")])
    assert set(first) == {"a|alpha", "b|beta"}
    assert len(set(first.values())) == 2
    with engine.begin() as conn:
        second = BulkWriter(conn).insert_assets([_asset("b|beta"), _asset("c|gamma")])
    # the existing key is left alone and missing from the answer
    assert set(second) == {"c|gamma"}
    assert second["c|gamma"] not in first.values()


def test_insert_assets_in_several_statements(engine: Engine) -> None:
    keys = [f"s{i}|coin{i}" for i in range(12_000)]  # 72,000 parameters on SQLite
    with engine.begin() as conn:
        created = BulkWriter(conn).insert_assets([_asset(k) for k in keys])
    assert sorted(created) == sorted(keys)


def test_select_in_with_leading_parameters_and_many_values(engine: Engine) -> None:
    keys = [f"s{i}|coin{i}" for i in range(35_000)]
    with engine.begin() as conn:
        bulk = BulkWriter(conn)
        created = bulk.insert_assets([_asset(k) for k in keys])
        asked = [*keys[::2], "missing|key"]
        rows = bulk.select_in(
            "SELECT match_key, id FROM asset WHERE flagged = ? AND match_key", asked, first=(False,)
        )
        none = bulk.select_in(
            "SELECT match_key FROM asset WHERE flagged = ? AND match_key", asked, first=(True,)
        )
    assert dict(rows) == {k: created[k] for k in keys[::2]}  # type: ignore[misc]
    assert none == []


@contextlib.contextmanager
def _local_zone(name: str) -> Iterator[None]:
    """The process's local time zone set to ``name`` for a moment (POSIX)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_sqlite_timestamp_text_is_what_sqlalchemy_writes(engine: Engine) -> None:
    """The ingest path's own timestamp text must read back through the ORM as the same instant,
    and sort as SQLAlchemy's own text does, whatever the offset or fraction it came with."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import DateTime

    moments = [
        datetime(2025, 1, 2, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 1, 2, 23, 59, 59, 123456, tzinfo=UTC),
        datetime(999, 12, 31, 0, 0, tzinfo=UTC),
        datetime(2025, 6, 30, 22, 30, 1, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ]
    naive = datetime(2025, 1, 2, 23, 59, 59)  # taken as UTC, whatever the machine's zone
    with engine.connect() as conn:
        bulk = BulkWriter(conn)
        with _local_zone("America/New_York"):
            assert bulk.timestamp(naive) == bulk.timestamp(naive.replace(tzinfo=UTC))
        if bulk.dialect != "sqlite":
            assert bulk.timestamp(moments[3]) is moments[3]  # PostgreSQL takes the datetime itself
            return
        process = DateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        assert process is not None
        for moment in moments:
            assert bulk.timestamp(moment) == process(moment.astimezone(UTC).replace(tzinfo=None))
    assert bulk.timestamp(None) is None


def test_select_pairs_finds_exactly_the_stored_pairs(engine: Engine) -> None:
    """Pairs are matched on both columns (a hash under another coin is not a match), in several
    statements on SQLite past its parameter limit."""
    from kasparro.db import bulk as bulk_module
    from kasparro.db import repository as repo
    from kasparro.db.models import RawCsv

    per_statement = bulk_module._SQLITE_MAX_PARAMETERS // 2
    stored = [(f"coin-{i % 7}", f"{i:032x}") for i in range(2 * per_statement + 4_000)]
    statements: list[str] = []
    with engine.begin() as conn:
        BulkWriter(conn).insert_raw(
            "raw_csv", [(None, coin, "{}", digest, utcnow()) for coin, digest in stored]
        )
        if engine.dialect.name == "sqlite":
            driver = conn.connection.driver_connection
            driver.set_trace_callback(statements.append)  # type: ignore[union-attr]
        expected = stored[::2]  # more pairs than one SQLite statement takes
        asked = [*expected, ("coin-0", f"{1:032x}"), ("nobody", f"{0:032x}")]
        found = BulkWriter(conn).select_pairs("raw_csv", ("coin_id", "payload_hash"), asked)
        if engine.dialect.name == "sqlite":
            driver.set_trace_callback(None)  # type: ignore[union-attr]
        hashes = repo.existing_hashes(conn=conn, table=RawCsv.__table__, keys=asked)
    assert len(asked) > per_statement
    if engine.dialect.name == "sqlite":
        assert len([s for s in statements if s.startswith("WITH v(a, b)")]) == 2
    assert sorted(found) == sorted(expected)  # coin-0 never stored hash 1 (coin-1 did)
    assert hashes == {digest for _, digest in expected}
