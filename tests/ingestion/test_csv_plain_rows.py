"""The CSV source reads plainly written rows without the model; every other row goes through
normalization, drift detection and the model. Both ways must give the same record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.db.models import SchemaDrift
from kasparro.exceptions import RecordValidationError
from kasparro.ingestion.csv_plain import plain_fields
from kasparro.ingestion.csv_source import CsvIngestion, _canonical_names
from kasparro.schemas.csv import COLUMN_ALIASES
from kasparro.schemas.unified import UnifiedRecord
from tests.conftest import count_rows, settings_for

KAGGLE_HEADER = ["SNo", "Name", "Symbol", "Date", "High", "Low", "Open", "Close", "Volume", "Marketcap"]  # fmt: skip
UNIFIED_HEADER = ["symbol", "name", "price_usd", "market_cap_usd", "rank", "last_updated"]
KAGGLE_ROW = ["7", "Bitcoin", "BTC", "2013-04-29 23:59:59", "147.48", "134", "134.44", "144.53", "0", "1603768864.5"]  # fmt: skip

# Cells near every edge the model draws: null tokens, signs, non-finite numbers, underscores,
# whitespace Python and the model disagree about, lengths at the limits, date spellings.
EDGE_CELLS = [
    "", " ", "nan", "NaN", "null", "None", "n/a", "NA", "-", "--", "0", "-0", "-0.0", "1", "-1",
    "2.5", " 2.5 ", "1e3", "1e400", "-1e400", "inf", "-inf", "Infinity", "1_000", "_1", "0x10",
    "1,5", "١٢٣", "BTC", "btc", " BTC", "BTC\x1f", "\u00a0ETH", "Bitcoin", "Ēther", "---", "!!",
    "a" * 64, "a" * 65, "b" * 255, "b" * 256, "2024-05-01", "2024-05-01T00:00:00Z",
    "2013-04-29 23:59:59", "2024-05-01T00:00:00+02:00", "1714521600", "2024-13-01", "yesterday",
]  # fmt: skip
NUMBERS = (
    st.floats().map(repr)
    | st.integers(-(10**6), 10**20).map(str)
    | st.decimals(allow_nan=False, places=4).map(str)
)
CELLS = NUMBERS | st.sampled_from(EDGE_CELLS) | st.text(max_size=12)
SPELLINGS = [
    *sorted(COLUMN_ALIASES),
    "Close",
    "Marketcap",
    "Price USD",
    " symbol",
    "extra",
    "Notes",
]


def _spellings_of(column: str) -> list[str]:
    return sorted(alias for alias, canonical in COLUMN_ALIASES.items() if canonical == column)


# The required columns always present (one spelling each), then any others, in any order.
HEADERS = st.tuples(
    *(st.sampled_from(_spellings_of(c)) for c in ("symbol", "name", "price_usd")),
    st.lists(st.sampled_from(SPELLINGS), max_size=9),
).flatmap(lambda drawn: st.permutations([*drawn[:3], *drawn[3]]))
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CsvIngestion]:
    """A source for mapping only: nothing here touches its database."""
    tmp = tmp_path_factory.mktemp("plain")
    url = f"sqlite:///{tmp / 'unused.db'}"
    engine = make_engine(url)
    yield CsvIngestion(settings_for(url, tmp), engine)
    engine.dispose()


def _by_model(source: CsvIngestion, payload: dict[str, Any]) -> UnifiedRecord | str:
    """The record the model path gives, or the kind of rejection."""
    try:
        return source.to_unified(source.model.model_validate(source.normalize(payload)))
    except ValidationError:
        return "invalid"
    except RecordValidationError:
        return "no id"


def _by_plain_path(source: CsvIngestion, payload: dict[str, Any]) -> UnifiedRecord | str | None:
    fields = plain_fields(_canonical_names(tuple(payload)), payload)
    if fields is None:
        return None
    try:
        return source._record(fields)
    except RecordValidationError:
        return "no id"


@FUZZ
@given(header=HEADERS, data=st.data())
@example(header=KAGGLE_HEADER, data=None)
def test_a_plain_row_gives_what_the_model_gives(
    source: CsvIngestion, header: list[str], data: Any
) -> None:
    if data is None:  # the explicit example: a real history row, which must take the plain path
        cells = KAGGLE_ROW
    else:
        cells = data.draw(st.lists(CELLS, min_size=len(header), max_size=len(header)))
    payload = dict(zip(header, cells, strict=False))  # a repeated header keeps its last cell
    plain = _by_plain_path(source, payload)
    if data is None:
        assert isinstance(plain, UnifiedRecord)
    if plain is not None:  # declining is always allowed; a plain answer must be the model's
        assert plain == _by_model(source, payload)


@pytest.mark.parametrize(
    ("header", "cells"),
    [
        (KAGGLE_HEADER, KAGGLE_ROW),
        (UNIFIED_HEADER, ["ETH", "Ethereum", "3000.5", "", "2", "2024-05-01T00:00:00Z"]),
        (
            [*UNIFIED_HEADER, "comment"],
            ["ETH", "Ethereum", "1_000", "nan", "-", "2024-05-01", "a note"],
        ),
    ],
)
def test_real_layouts_take_the_plain_path(
    source: CsvIngestion, header: list[str], cells: list[str]
) -> None:
    payload = dict(zip(header, cells, strict=True))
    plain = _by_plain_path(source, payload)
    assert isinstance(plain, UnifiedRecord)
    assert plain == _by_model(source, payload)


@pytest.mark.parametrize(
    ("cell_index", "cell"),
    [(2, ""), (2, "-3"), (2, "abc"), (2, "inf"), (0, " ETH"), (0, "E" * 65), (5, "someday")],
)
def test_rows_the_model_rejects_are_left_to_it(
    source: CsvIngestion, cell_index: int, cell: str
) -> None:
    cells = ["ETH", "Ethereum", "3000.5", "", "2", "2024-05-01T00:00:00Z"]
    cells[cell_index] = cell
    assert (
        plain_fields(tuple(UNIFIED_HEADER), dict(zip(UNIFIED_HEADER, cells, strict=True))) is None
    )


def test_a_run_asks_the_model_once_per_header_and_still_records_drift(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    """1,000 plain rows and one bad one: the model sees the first row (whose drift, an extra
    column, is recorded once) and the bad row (quarantined with the model's reason)."""
    path = tmp_path / "history.csv"
    lines = [",".join([*UNIFIED_HEADER, "exchange"])]
    lines += [f"C{i},Coin {i},{i + 0.5},{i * 10},{i},2024-05-01T00:00:00Z,x" for i in range(1000)]
    lines.append("BAD,Bad coin,-5,,,2024-05-01T00:00:00Z,x")
    path.write_text("\n".join(lines) + "\n")
    csv_source = CsvIngestion(make_settings(csv_path=path), engine)
    seen: list[Any] = []
    validate = csv_source._validate

    def counting(data: Any) -> Any:
        seen.append(data)
        return validate(data)

    csv_source._validate = counting
    result = csv_source.run()
    assert (result.loaded, result.quarantined, result.status) == (1000, 1, "partial")
    assert [row["symbol"] for row in seen] == ["C0", "BAD"]
    assert count_rows(engine, "unified_crypto") == 1000
    with engine.connect() as conn:
        drift = conn.execute(sa.select(SchemaDrift.field, SchemaDrift.kind)).all()
    assert [tuple(row) for row in drift] == [("exchange", "new")]
