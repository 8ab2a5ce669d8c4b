"""Property-based fuzzing of the source models, mappers and CSV parser through the public run path:
any input is either stored or quarantined, and no exception escapes the pipeline."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.models import Base, EtlCheckpoint
from kasparro.ingestion.base import BaseIngestion, FetchedBatch
from kasparro.ingestion.coingecko import CoinGeckoIngestion
from kasparro.ingestion.coinpaprika import CoinPaprikaIngestion
from kasparro.ingestion.csv_source import CsvIngestion
from kasparro.pipeline.runner import run_pass
from tests.fakes import coingecko_market, coinpaprika_ticker, coins
from tests.fakes.data import UNIFIED_HEADER
from tests.reliability.csvgen import reconcile
from tests.reliability.helpers import scalar

WORLD = coins(5)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SOAK = settings(FUZZ, max_examples=500)
# NUL included: a record carrying one is quarantined (the database cannot store it), never a crash;
# the awkward characters grow when upper-cased or NFKD-normalized ("ß" -> "SS", "㍱" -> "hPa")
# or mean something to CSV, JSON or PostgreSQL
CHARS = st.characters(blacklist_categories=("Cs",)) | st.sampled_from('ßŉǰﬃ㍱İ\u0301\x00\r\n",')
TEXT = st.text(CHARS, max_size=20)
LONG_TEXT = st.text(CHARS, min_size=50, max_size=300)  # around the 64 and 255 column limits
COLUMN_EDGES = st.sampled_from([-1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1])
NUMBERS = (
    st.integers(-(2**63), 2**64 - 1)  # what orjson decodes as int
    | COLUMN_EDGES
    | st.floats(allow_nan=False)  # orjson cannot carry NaN
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT | LONG_TEXT
CELLS = TEXT | LONG_TEXT | NUMBERS.map(str)  # CSV cells: any text, numbers spelled every way
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
_counter = itertools.count()


def _near_valid(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A real row with some fields replaced, dropped or added."""
    keys = sorted(template)
    return st.builds(
        lambda changes, drops, extra: {
            **{k: v for k, v in template.items() if k not in drops},
            **changes,
            **extra,
        },
        st.dictionaries(st.sampled_from(keys), JSON, max_size=4),
        st.sets(st.sampled_from(keys), max_size=3),
        st.dictionaries(TEXT, JSON, max_size=2),
    )


def _one_changed(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A real row with one field set to a scalar: finds the edges of each field alone."""
    return st.builds(
        lambda key, value: {**template, key: value}, st.sampled_from(sorted(template)), SCALARS
    )


def _payloads(template: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(_one_changed(template) | _near_valid(template) | JSON, min_size=1, max_size=8)


def _fed(base: type[BaseIngestion], state: dict[str, Any] | None = None) -> type[BaseIngestion]:
    """The source fed ``payloads`` as one batch completing ``state`` (a file source's offset)."""

    class Fed(base):  # type: ignore[valid-type, misc]
        payloads: list[Any] = []

        def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
            yield FetchedBatch(list(self.payloads), state)

    return Fed


def _has_nul(payload: Any) -> bool:
    return "\\u0000" in orjson.dumps(payload).decode()


def _emptied(engine: Engine) -> Engine:
    """The database without data: every example starts from the same state, so a failure
    replays (the function-scoped database is shared by all of a test's examples)."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "data_version":
                conn.execute(table.delete())
    return engine


def _check(ingestion: BaseIngestion, payloads: list[Any]) -> None:
    _emptied(ingestion.engine)
    ingestion.payloads = payloads  # type: ignore[attr-defined]
    result = ingestion.run()
    reconcile(ingestion.engine, result, served=len(payloads))
    assert result.quarantined >= sum(map(_has_nul, payloads)), result


def _twins(**strategies: st.SearchStrategy[Any]) -> Callable[[Callable[..., None]], Any]:
    """The fuzz test run with CI's examples, and its ``make reliability`` twin with many more."""

    def decorate(body: Callable[..., None]) -> Any:
        return FUZZ(given(**strategies)(body)), pytest.mark.slow(SOAK(given(**strategies)(body)))

    return decorate


@_twins(payloads=_payloads(coingecko_market(WORLD[0])))
def _coingecko(make_settings: Callable[..., Settings], engine: Engine, payloads: list[Any]) -> None:
    _check(_fed(CoinGeckoIngestion)(make_settings(), engine), payloads)


@_twins(payloads=_payloads(coinpaprika_ticker(WORLD[1])))
def _coinpaprika(
    make_settings: Callable[..., Settings], engine: Engine, payloads: list[Any]
) -> None:
    _check(_fed(CoinPaprikaIngestion)(make_settings(), engine), payloads)


test_coingecko_payloads_validate_or_quarantine, test_coingecko_soak = _coingecko
test_coinpaprika_payloads_validate_or_quarantine, test_coinpaprika_soak = _coinpaprika

CSV_ROW = dict(
    zip(
        UNIFIED_HEADER,
        ["BTC", "Bitcoin", "1.5", "2", "3", "", "", "", "0.1", "1", "2024-01-01T00:00:00Z"],
        strict=True,
    )
)
HEADER_LINE = ",".join(UNIFIED_HEADER)


@_twins(
    payloads=st.lists(
        st.dictionaries(st.sampled_from(UNIFIED_HEADER), CELLS).map(lambda d: {**CSV_ROW, **d}),
        min_size=1,
        max_size=8,
    )
)
def _csv_rows(make_settings: Callable[..., Settings], engine: Engine, payloads: list[Any]) -> None:
    state = {"offset": 1, "last_value": "fed.csv@1"}  # as a file source checkpoints
    _check(_fed(CsvIngestion, state)(make_settings(), engine), payloads)


def _with_crs(text: str, cuts: list[int]) -> str:
    for cut in sorted(cuts, reverse=True):
        text = text[:cut] + "\r" + text[cut:]
    return text


# a header with stray CRs (in names, before its newline), then rows of any cells, any line ends
CSV_FILES = st.builds(
    lambda header, lines, end: (header + end + end.join(lines)).encode(),
    st.lists(st.integers(0, len(HEADER_LINE)), max_size=3).map(
        lambda cuts: _with_crs(HEADER_LINE, cuts)
    ),
    st.lists(st.lists(CELLS, max_size=14).map(",".join), max_size=20),
    st.sampled_from(["\n", "\r\n"]),
)


@_twins(content=st.binary(max_size=2000) | CSV_FILES)
def _csv_files(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / f"fuzz-{next(_counter)}.csv"  # a new file each time: no checkpoint applies
    path.write_bytes(content)
    (result,) = run_pass(make_settings(csv_path=path), _emptied(engine), sources=["csv"])
    reconcile(engine, result, served=result.fetched)  # rows in a random file: what the parser found


test_csv_rows_validate_or_quarantine, test_csv_rows_soak = _csv_rows
test_csv_parser_never_crashes_on_arbitrary_files, test_csv_parser_soak = _csv_files


def test_a_carriage_return_in_the_header_means_nothing(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "cr.csv"
    path.write_bytes(b"symbol,na\rme,price_usd\r\nBTC,Bitcoin,1\r\n")
    (result,) = run_pass(make_settings(csv_path=path), engine, sources=["csv"])

    reconcile(engine, result, served=1)
    assert (result.status, result.loaded) == ("success", 1), result
    assert scalar(engine, "SELECT name FROM unified_crypto") == "Bitcoin"


def test_a_coin_that_stops_sending_last_updated_leaves_verify_passing(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    ticker = coinpaprika_ticker(WORLD[1])
    for payload in (ticker, {**ticker, "last_updated": None}):
        ingestion = _fed(CoinPaprikaIngestion)(make_settings(), engine)
        ingestion.payloads = [payload]  # type: ignore[attr-defined]
        reconcile(engine, ingestion.run(), served=1)
