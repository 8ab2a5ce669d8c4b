"""``kasparro db verify`` catches what the schema cannot: each check made to fire on a real,
then damaged, database, and the command exits non-zero naming the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Engine
from typer.testing import CliRunner

from kasparro.cli import app
from kasparro.config import Settings
from kasparro.db.models import Base
from kasparro.pipeline.runner import run_pass
from kasparro.pipeline.verify import verify
from tests.fakes import coins, write_history_csv
from tests.pipeline.test_backup import seed

T = Base.metadata.tables
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("cli_on_test_database")


def _verify_fails_with(check: str, problem: str) -> None:
    result = runner.invoke(app, ["db", "verify"])
    assert result.exit_code == 1, result.output
    assert f"FAIL {check}" in result.output
    assert problem in " ".join(result.output.split())  # the console wraps long lines


def test_a_duplicate_history_point_is_named(engine: Engine) -> None:
    seed(engine)
    # the unique key forbids duplicates, so a damaged copy of the schema is needed to store one
    with engine.begin() as conn:
        with Operations(MigrationContext.configure(conn)).batch_alter_table("price_history") as op:
            op.drop_constraint("uq_price_history_asset_id_source_observed_at", type_="unique")
        history = T["price_history"]
        point = conn.execute(sa.select(history).limit(1)).mappings().one()
        conn.execute(history.insert().values({**point, "id": 10_000}))

    try:
        assert verify(engine).checks["no duplicate history points"] == [
            "1 history point(s) are stored more than once"
        ]
        _verify_fails_with(
            "no duplicate history points", "1 history point(s) are stored more than once"
        )
    finally:  # the PostgreSQL database is shared by the session: put the key back
        with engine.begin() as conn:
            conn.execute(T["price_history"].delete().where(T["price_history"].c.id == 10_000))
            with Operations(MigrationContext.configure(conn)).batch_alter_table(
                "price_history"
            ) as op:
                op.create_unique_constraint(
                    "uq_price_history_asset_id_source_observed_at",
                    ["asset_id", "source", "observed_at"],
                )


def _index_pages(engine: Engine, path: Path) -> tuple[int, int, int]:
    """Page size, and the root (interior) and right-most leaf page of a price-history index."""
    with engine.connect() as conn:
        page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        root = int(
            conn.exec_driver_sql(
                "SELECT rootpage FROM sqlite_master WHERE name = 'ix_price_history_asset_time'"
            ).scalar_one()
        )
    engine.dispose()
    with path.open("rb") as handle:
        handle.seek((root - 1) * page_size)
        header = handle.read(12)
    assert header[0] == 2, "the index should span several pages"  # 2: interior index page
    return page_size, root, int.from_bytes(header[8:12], "big")


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        # cells of a leaf scribbled over: SQLite reports what no longer matches
        ("leaf", "missing from index ix_price_history_asset_time"),
        # an interior page scribbled over: the check finds its child pointers broken
        ("root", "invalid page number"),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_corrupt_sqlite_page_is_named(
    engine: Engine, db_url: str, page: str, problem: str
) -> None:
    seed(engine, coins=160)  # enough rows for an index of several 16 KiB pages
    path = Path(sa.make_url(db_url).database or "")
    page_size, root, leaf = _index_pages(engine, path)
    number = leaf if page == "leaf" else root
    with path.open("r+b") as handle:  # pages count from 1; the last 200 bytes hold cells
        handle.seek(number * page_size - 200)
        handle.write(b"\x07" * 200)

    problems = verify(engine).checks["sqlite integrity"]
    assert problems
    assert all(p.startswith("integrity_check: ") for p in problems), problems
    assert any(problem in p for p in problems), problems
    _verify_fails_with("sqlite integrity", problem)


@pytest.fixture
def csv_loaded(make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path) -> Engine:
    """A database after a real CSV run."""
    path = tmp_path / "history.csv"
    write_history_csv(path, coins(3), days=2)
    settings = make_settings(csv_path=path)
    [result] = run_pass(settings, engine, sources=["csv"])
    assert result.status == "success"
    assert verify(engine).ok, verify(engine).problems  # no false alarm on real data
    return engine


def _csv_state(engine: Engine) -> tuple[str, dict[str, Any], int]:
    checkpoint = T["etl_checkpoint"]
    with engine.connect() as conn:
        last_value, state, run_id = conn.execute(
            sa.select(checkpoint.c.last_value, checkpoint.c.state, checkpoint.c.run_id).where(
                checkpoint.c.source == "csv"
            )
        ).one()
    return last_value, state, run_id


def _run_recorded_nothing(engine: Engine) -> None:
    _, _, run_id = _csv_state(engine)
    with engine.begin() as conn:
        conn.execute(
            T["etl_run"]
            .update()
            .where(T["etl_run"].c.id == run_id)
            .values(fetched=0, loaded=0, unchanged=0, quarantined=0)
        )


def _set_csv_offset(engine: Engine, offset: Callable[[Any], Any]) -> None:
    """Rewrite the CSV checkpoint's state offset alone (its ``last_value`` is left as it was)."""
    _, state, _ = _csv_state(engine)
    with engine.begin() as conn:
        conn.execute(
            T["etl_checkpoint"]
            .update()
            .where(T["etl_checkpoint"].c.source == "csv")
            .values(state={**state, "offset": offset(state["offset"])})
        )


def _offset_moved_alone(engine: Engine) -> None:
    _set_csv_offset(engine, lambda offset: offset + 4096)


def _offset_unreadable(engine: Engine) -> None:
    _set_csv_offset(engine, lambda _offset: "end")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_run_recorded_nothing, "checkpoint of csv was moved by run 1, which recorded no records"),
        (_offset_moved_alone, "but its state says byte"),
        (_offset_unreadable, "checkpoint of csv has an unreadable byte offset 'end'"),
    ],
)
def test_a_csv_checkpoint_ahead_of_its_data_is_named(
    csv_loaded: Engine, damage: Callable[[Engine], None], problem: str
) -> None:
    damage(csv_loaded)
    found = verify(csv_loaded).checks["no checkpoint ahead of its data"]
    assert len(found) == 1
    assert problem in found[0]
    _verify_fails_with("no checkpoint ahead of its data", problem)
