"""SchemaGate: a service's schema brought to head now, or as soon as the database answers."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine

from kasparro.db import gate as gate_module
from kasparro.db.gate import SchemaGate
from kasparro.exceptions import DatabaseUnavailableError


def _upgrades(*outcomes: Exception | None) -> tuple[Callable[[object], None], list[int]]:
    """An upgrade that raises each given error in turn (None: succeeds), then succeeds."""
    calls: list[int] = []

    def upgrade(_engine: object) -> None:
        calls.append(1)
        outcome = outcomes[len(calls) - 1] if len(calls) <= len(outcomes) else None
        if outcome is not None:
            raise outcome

    return upgrade, calls


def test_the_database_coming_back_opens_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    away = DatabaseUnavailableError("database unreachable: connection refused")
    upgrade, calls = _upgrades(away, away)
    monkeypatch.setattr(gate_module, "upgrade_schema", upgrade)
    gate = SchemaGate(create_engine("sqlite://"), stop=threading.Event(), retry_seconds=0.01)

    assert gate.open() is False  # first attempt failed: retrying in the background
    assert gate.wait() is True
    assert len(calls) == 3
    assert not gate.failed.is_set()


def test_an_error_retrying_cannot_cure_closes_the_gate_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    away = DatabaseUnavailableError("database unreachable: connection refused")
    upgrade, calls = _upgrades(away, RuntimeError("Can't locate revision identified by 'zzz'"))
    monkeypatch.setattr(gate_module, "upgrade_schema", upgrade)
    gate = SchemaGate(create_engine("sqlite://"), stop=threading.Event(), retry_seconds=0.01)

    gate.open()
    assert gate.wait() is False  # returns instead of waiting for ever
    assert gate.failed.is_set()
    assert not gate.ready.is_set()
    assert len(calls) == 2  # no retry after it


def test_stopping_ends_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade, _ = _upgrades(*[DatabaseUnavailableError("away")] * 1000)
    monkeypatch.setattr(gate_module, "upgrade_schema", upgrade)
    stop = threading.Event()
    gate = SchemaGate(create_engine("sqlite://"), stop=stop, retry_seconds=0.01)
    gate.open()
    threading.Timer(0.2, stop.set).start()

    assert gate.wait() is False
    assert not gate.ready.is_set()
