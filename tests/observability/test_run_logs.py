"""Log lines of a real ETL pass, in both formats: every line of a run names its run and source,
and JSON lines carry the keys of the spec's example (timestamp, level, message, run_id, source)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.observability.logging import configure_logging
from kasparro.pipeline.breaker import CircuitBreaker
from kasparro.pipeline.runner import run_pass
from tests.fakes import FakeUpstream, Fault, coins, drop_field, write_history_csv

WORLD = coins(12)
SPEC_KEYS = {"timestamp", "level", "message", "run_id", "source", "records_processed"}
CONSOLE = re.compile(r"^(\d\d:\d\d:\d\d) (DEBUG|INFO|WARNING|ERROR|CRITICAL) +([\w.]+): (.+)$")
# the context the console format appends to a line, as key=value
CONSOLE_FIELD = re.compile(r"(?:^| )(run_id|source)=(\S+)")


def _from_json(text: str) -> dict[str, Any]:
    entry = orjson.loads(text)
    assert isinstance(entry, dict)
    assert {"timestamp", "level", "message", "logger"} <= entry.keys(), entry
    stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
    assert entry["timestamp"].endswith("Z")
    assert stamp.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 300
    assert entry["level"] in ("INFO", "WARNING", "ERROR")
    return dict(entry)


def _from_console(text: str) -> dict[str, Any]:
    match = CONSOLE.match(text)
    assert match is not None, f"not a console line: {text!r}"
    _, level, logger, rest = match.groups()
    entry: dict[str, Any] = {"level": level, "logger": logger, "message": rest}
    for key, value in CONSOLE_FIELD.findall(rest):
        entry[key] = int(value) if key == "run_id" else value
    return entry


@pytest.fixture
def captured() -> Iterator[Callable[[str], io.StringIO]]:
    """Install the production logging setup writing into a buffer; restore the root logger after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def install(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(fmt=fmt, level="INFO", stream=stream)
        return stream

    yield install
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Settings]:
    """All three sources against the fake upstream, with something to say: a retried 429,
    schema drift, a fatal 401 that opens CoinGecko's breaker."""
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, WORLD[:3], days=2)
    with FakeUpstream(WORLD) as upstream:
        upstream.inject(
            "coinpaprika", Fault.http(429, retry_after=0), Fault.mutated(drop_field("rank"))
        )
        upstream.inject("coingecko", Fault.http(401))
        yield make_settings(
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            csv_path=csv_path,
            top_n=10,
            breaker_failure_threshold=1,
        )


@pytest.mark.parametrize(("fmt", "parse"), [("json", _from_json), ("console", _from_console)])
def test_every_line_of_a_run_names_its_run_and_source(
    captured: Callable[[str], io.StringIO],
    settings: Settings,
    engine: Engine,
    fmt: str,
    parse: Callable[[str], dict[str, Any]],
) -> None:
    stream = captured(fmt)
    results = {r.source: r for r in run_pass(settings, engine)}
    assert {s: r.status for s, r in results.items()} == {
        "coinpaprika": "success",
        "coingecko": "failed",
        "csv": "success",
    }
    entries = [parse(line) for line in stream.getvalue().splitlines()]
    starts = [i for i, e in enumerate(entries) if e["message"].startswith("ETL run started")]
    ends = [i for i, e in enumerate(entries) if e["message"].startswith("ETL run completed")]
    assert len(starts) == len(ends) == 3

    open_runs: dict[str, int] = {}  # source → run id, between its start and its end
    for entry in entries[starts[0] : ends[-1] + 1]:
        assert "source" in entry, f"a line of the pass names no source: {entry}"
        source = entry["source"]
        if entry["message"].startswith("ETL run started"):
            open_runs[source] = entry["run_id"]
        if source in open_runs:
            assert entry.get("run_id") == open_runs[source], f"a line of a run lacks it: {entry}"
        if entry["message"].startswith("ETL run completed"):
            assert entry["run_id"] == results[source].run_id
            del open_runs[source]
    said = " | ".join(e["message"] for e in entries)
    # the lines most likely to lose their context: retries, drift, failures, the breaker
    for expected in ("retrying", "schema drift", "source failed", "breaker of coingecko is open"):
        assert expected in said, expected
    [opened] = [e for e in entries if "circuit breaker of coingecko is open" in e["message"]]
    assert (opened["source"], opened["run_id"]) == ("coingecko", results["coingecko"].run_id)
    if fmt == "json":
        for index in ends:
            assert entries[index].keys() >= SPEC_KEYS, entries[index]


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        (7, {"source": "coingecko", "run_id": 7}),
        (None, {"source": "coingecko"}),  # recorded outside any run: nothing to name
    ],
)
def test_an_opening_breaker_names_its_source_and_run(
    captured: Callable[[str], io.StringIO],
    engine: Engine,
    run_id: int | None,
    expected: dict[str, Any],
) -> None:
    stream = captured("json")
    CircuitBreaker(engine, threshold=1, cooldown=60).record(
        "coingecko", success=False, run_id=run_id
    )
    [line] = [_from_json(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "circuit breaker of coingecko is open"
    assert line["level"] == "WARNING"
    assert {k: line[k] for k in ("source", "run_id") if k in line} == expected
