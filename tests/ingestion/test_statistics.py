"""PostgreSQL's planner statistics are refreshed while a large load grows the tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.ingestion.csv_source import CsvIngestion
from tests.conftest import settings_for


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_growing_load_analyzes_the_tables_it_looks_up(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """On PostgreSQL a run that has written past its threshold refreshes the planner's
    statistics of the tables its own lookups read (reltuples is -1 until a table is analyzed)."""
    csv = tmp_path / "c.csv"
    csv.write_text("symbol,name,price_usd\n" + "".join(f"C{i},Coin {i},{i}\n" for i in range(30)))
    ingestion = CsvIngestion(settings_for(db_url, tmp_path, csv_path=csv, batch_size=10), engine)
    ingestion._analyze_threshold = 10
    assert ingestion.run().status == "success"
    with engine.connect() as conn:
        tuples = dict(
            conn.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE relname IN ('asset', 'asset_source', 'raw_csv')"
            ).all()
        )
    assert set(tuples) == {"asset", "asset_source", "raw_csv"}
    assert all(count >= 10 for count in tuples.values()), tuples
