"""The collector's threshold is raised while runs are in progress and put back after the last."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from kasparro.ingestion.collector import GEN0_THRESHOLD, fewer_collections
from kasparro.ingestion.csv_source import CsvIngestion
from tests.conftest import settings_for


@pytest.fixture
def custom_threshold() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    gc.set_threshold(900, 11, 12)
    yield gc.get_threshold()
    gc.set_threshold(*saved)


def test_raised_inside_and_restored_after(custom_threshold: tuple[int, int, int]) -> None:
    with fewer_collections():
        assert gc.get_threshold() == (GEN0_THRESHOLD, 11, 12)
    assert gc.get_threshold() == custom_threshold


def test_overlapping_runs_restore_only_when_the_last_ends(
    custom_threshold: tuple[int, int, int],
) -> None:
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == GEN0_THRESHOLD  # the second run is still going
    second.__exit__(None, None, None)
    assert gc.get_threshold() == custom_threshold


def test_restored_when_the_body_raises(custom_threshold: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == custom_threshold


def test_an_ingestion_run_holds_it(
    custom_threshold: tuple[int, int, int], db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The production path takes the raise: seen from inside a run, put back after it."""
    seen: list[tuple[int, int, int]] = []
    csv = tmp_path / "c.csv"
    csv.write_text("symbol,name,price_usd\nBTC,Bitcoin,1\n")

    class Watching(CsvIngestion):
        def to_unified(self, item: Any) -> Any:
            seen.append(gc.get_threshold())
            return super().to_unified(item)

    result = Watching(settings_for(db_url, tmp_path, csv_path=csv), engine).run()
    assert result.status == "success"
    assert seen == [(GEN0_THRESHOLD, 11, 12)]
    assert gc.get_threshold() == custom_threshold


def test_a_threshold_set_during_a_run_is_kept(custom_threshold: tuple[int, int, int]) -> None:
    with fewer_collections():
        gc.set_threshold(2000, 11, 12)  # someone else's choice, made meanwhile
    assert gc.get_threshold() == (2000, 11, 12)


def test_a_collector_switched_off_stays_off(custom_threshold: tuple[int, int, int]) -> None:
    gc.set_threshold(0, 11, 12)
    with fewer_collections():
        assert gc.get_threshold() == (0, 11, 12)
    assert gc.get_threshold() == (0, 11, 12)
