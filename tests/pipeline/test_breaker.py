"""The circuit breaker opens, half-opens and closes, and its state survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from kasparro.pipeline.breaker import CircuitBreaker

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_unknown_source_is_closed_and_allowed(engine: Engine) -> None:
    breaker = CircuitBreaker(engine, threshold=2, cooldown=60)
    assert breaker.allow("coingecko", at(0)) is True
    assert breaker.states() == {}


def test_opens_after_threshold_consecutive_failures(engine: Engine) -> None:
    breaker = CircuitBreaker(engine, threshold=3, cooldown=60)
    for i in range(2):
        breaker.record("coingecko", success=False, now=at(i))
        assert breaker.allow("coingecko", at(i)) is True
    breaker.record("coingecko", success=False, now=at(2))
    state = breaker.states()["coingecko"]
    assert state["state"] == "open"
    assert state["consecutive_failures"] == 3
    assert state["opened_at"] == at(2)
    assert breaker.allow("coingecko", at(30)) is False
    assert breaker.allow("coinpaprika", at(30)) is True


def test_success_resets_the_failure_count(engine: Engine) -> None:
    breaker = CircuitBreaker(engine, threshold=2, cooldown=60)
    breaker.record("csv", success=False, now=at(0))
    breaker.record("csv", success=True, now=at(1))
    breaker.record("csv", success=False, now=at(2))
    state = breaker.states()["csv"]
    assert (state["state"], state["consecutive_failures"]) == ("closed", 1)


@pytest.mark.parametrize(
    ("probe_succeeds", "expected_state", "allowed_after_probe"),
    [(True, "closed", True), (False, "open", False)],
)
def test_half_open_probe_decides(
    engine: Engine, probe_succeeds: bool, expected_state: str, allowed_after_probe: bool
) -> None:
    breaker = CircuitBreaker(engine, threshold=1, cooldown=60)
    breaker.record("coingecko", success=False, now=at(0))
    assert breaker.allow("coingecko", at(59)) is False
    assert breaker.allow("coingecko", at(60)) is True  # the one probe
    assert breaker.states()["coingecko"]["state"] == "half_open"
    assert breaker.allow("coingecko", at(61)) is False  # no second probe while one is out
    breaker.record("coingecko", success=probe_succeeds, now=at(70))
    state = breaker.states()["coingecko"]
    assert state["state"] == expected_state
    assert breaker.allow("coingecko", at(71)) is allowed_after_probe
    if not probe_succeeds:
        assert state["opened_at"] == at(70)  # a fresh cool-down
        assert breaker.allow("coingecko", at(130)) is True


def test_state_survives_a_new_instance(engine: Engine) -> None:
    CircuitBreaker(engine, threshold=2, cooldown=600).record(
        "coinpaprika", success=False, now=at(0)
    )
    CircuitBreaker(engine, threshold=2, cooldown=600).record(
        "coinpaprika", success=False, now=at(1)
    )
    restarted = CircuitBreaker(engine, threshold=2, cooldown=600)
    assert restarted.allow("coinpaprika", at(100)) is False
    assert restarted.states()["coinpaprika"]["retry_at"] == at(601)


def test_only_one_of_two_racing_instances_gets_the_probe(engine: Engine) -> None:
    first = CircuitBreaker(engine, threshold=1, cooldown=10)
    second = CircuitBreaker(engine, threshold=1, cooldown=10)
    first.record("csv", success=False, now=at(0))
    assert [first.allow("csv", at(20)), second.allow("csv", at(20))] == [True, False]


def test_a_lost_probe_is_replaced_after_another_cooldown(engine: Engine) -> None:
    breaker = CircuitBreaker(engine, threshold=1, cooldown=10)
    breaker.record("csv", success=False, now=at(0))
    assert breaker.allow("csv", at(10)) is True
    assert breaker.allow("csv", at(15)) is False
    assert breaker.allow("csv", at(20)) is True


def test_threshold_must_be_positive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(engine, threshold=0, cooldown=1)
