"""Local fakes of the outside world: a fake upstream HTTP server and deterministic market data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.data import (
    WorldCoin,
    advance,
    coingecko_market,
    coinpaprika_ticker,
    coins,
    write_history_csv,
)
from tests.fakes.faults import Fault, drop_field, rename_field, set_field
from tests.fakes.upstream import FakeUpstream, RequestRecord

__all__ = [
    "FakeUpstream",
    "Fault",
    "RequestRecord",
    "WorldCoin",
    "advance",
    "coingecko_market",
    "coinpaprika_ticker",
    "coins",
    "drop_field",
    "fake_upstream",
    "rename_field",
    "set_field",
    "write_history_csv",
]


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started FakeUpstream serving 25 world coins; stopped (threads joined) after the test."""
    with FakeUpstream() as upstream:
        yield upstream
