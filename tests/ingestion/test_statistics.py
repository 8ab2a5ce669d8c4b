"""PostgreSQL's planner statistics are refreshed while a large load grows the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from kasparro.ingestion.csv_source import CsvIngestion
from tests.conftest import settings_for


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_growing_load_analyzes_the_tables_it_looks_up(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """On PostgreSQL a run that has written past its threshold refreshes the planner's
    statistics of the tables its own lookups read (reltuples is -1 until a table is analyzed),
    and only those: the unified and history tables are left to autovacuum."""
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("ANALYZE"):
            statements.append(statement)

    csv = tmp_path / "c.csv"
    csv.write_text("symbol,name,price_usd\n" + "".join(f"C{i},Coin {i},{i}\n" for i in range(30)))
    ingestion = CsvIngestion(settings_for(db_url, tmp_path, csv_path=csv, batch_size=10), engine)
    ingestion._analyze_threshold = 10
    assert ingestion.run().status == "success"
    event.remove(engine, "before_cursor_execute", _seen)
    assert statements  # 30 rows in batches of 10, past a threshold of 10
    assert {s.removeprefix("ANALYZE ") for s in statements} == {"asset, asset_source, raw_csv"}
    with engine.connect() as conn:
        tuples = dict(
            conn.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE relname IN ('asset', 'asset_source', 'raw_csv')"
            ).all()
        )
    assert set(tuples) == {"asset", "asset_source", "raw_csv"}
    assert all(count >= 10 for count in tuples.values()), tuples
