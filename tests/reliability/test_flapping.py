"""A flapping upstream over many passes: every record loaded exactly once, retries within budget,
the circuit breaker opening and closing as configured."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.breaker import CircuitBreaker
from kasparro.pipeline.runner import run_pass
from kasparro.pipeline.verify import verify
from tests.fakes import FakeUpstream, Fault, advance, coins
from tests.fakes.faults import FLAP_FAULTS
from tests.reliability.helpers import duplicates, history_counts, loaded_totals, rows

WORLD = coins(30)
API = ("coinpaprika", "coingecko")
FAULTS = (
    *FLAP_FAULTS,  # 429 without Retry-After, 500, HTML 503, truncated JSON, connection reset
    Fault.http(429, retry_after=0.05),
    Fault.http(502),
    Fault.timeout(0.6),  # longer than the client's 0.3 s timeout
    Fault.close(),
)
WINDOW = 5  # the world moves every WINDOW passes; the last pass of a window is calm
# passes of each window in which CoinGecko's first request fails every attempt, so two runs in
# a row fail and its breaker (threshold 2) must open, then close again by the calm pass
FORCED = (1, 2)
THRESHOLD = 2


@pytest.mark.parametrize(
    "passes",
    [
        pytest.param(10, id="ci-10-passes"),
        pytest.param(50, id="soak-50-passes", marks=pytest.mark.slow),
    ],
)
def test_flapping_upstream_loads_every_record_exactly_once_within_retry_budget(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path, passes: int
) -> None:
    world = WORLD
    served: dict[str, set[tuple[str, str]]] = {s: set() for s in API}
    statuses: list[str] = []
    with FakeUpstream(world) as upstream:
        settings = make_settings(
            sources=list(API),
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            top_n=30,
            coingecko_per_page=10,
            http_timeout=0.3,
            retry_attempts=3,
            breaker_failure_threshold=THRESHOLD,
            breaker_cooldown=0.0,  # an open breaker lets the next pass probe
        )
        breaker = CircuitBreaker(engine, threshold=THRESHOLD, cooldown=0.0)
        failed_in_a_row = dict.fromkeys(API, 0)
        opened = dict.fromkeys(API, 0)
        closed_after_open = dict.fromkeys(API, 0)
        for number in range(passes):
            if number and number % WINDOW == 0:
                world = advance(world, minutes=5, seed=number)
                upstream.set_coins(world)
            for name, served_rows in (
                ("coinpaprika", upstream.paprika_rows),
                ("coingecko", upstream.gecko_rows),
            ):
                served[name] |= {(str(r["id"]), str(r["last_updated"])) for r in served_rows}
            calm = number % WINDOW == WINDOW - 1 or number == passes - 1
            upstream.flap(0.0 if calm else 0.3, seed=number, faults=FAULTS)
            if number % WINDOW in FORCED:
                upstream.inject("coingecko", *[Fault.http(500)] * settings.retry_attempts)
            results = run_pass(settings, engine)
            statuses += [r.status for r in results]
            states = breaker.states()
            for result in results:
                state = states.get(result.source, {}).get("state", "closed")
                if result.status == "failed":
                    failed_in_a_row[result.source] += 1
                    expected_state = (
                        "open" if failed_in_a_row[result.source] >= THRESHOLD else "closed"
                    )
                    opened[result.source] += failed_in_a_row[result.source] == THRESHOLD
                else:  # success or partial closes it (no run is skipped: the cool-down is 0)
                    closed_after_open[result.source] += failed_in_a_row[result.source] >= THRESHOLD
                    failed_in_a_row[result.source] = 0
                    expected_state = "closed"
                assert state == expected_state, (number, result.source, result.status, state)
            if calm:
                assert {r.source: r.status for r in results} == dict.fromkeys(API, "success"), (
                    results
                )
        faults_served = sum(1 for r in upstream.requests() if r.fault is not None)
        requests_served = {s: len(upstream.requests(s)) for s in API}

    expected = {name: len(keys) for name, keys in served.items()}
    assert history_counts(engine) == expected  # one point per (coin, observed_at)
    assert loaded_totals(engine) == expected  # and each counted as loaded exactly once
    assert duplicates(engine) == {}
    assert faults_served >= passes  # the upstream really did flap
    assert {"partial", "failed"} & set(statuses) or faults_served < 3
    attempts = settings.retry_attempts
    for source, requests, retries in rows(
        engine, "SELECT source, requests, retries FROM etl_run WHERE status <> 'skipped'"
    ):
        assert retries <= (attempts - 1) * (requests - retries), (source, requests, retries)
    sent = dict(rows(engine, "SELECT source, sum(requests) FROM etl_run GROUP BY source"))
    assert {s: int(n) for s, n in sent.items()} == requests_served  # every attempt accounted for
    assert opened["coingecko"] >= passes // WINDOW  # each window's forced failures opened it
    assert closed_after_open == opened  # and every opening was closed again by a later run
    report = verify(engine)
    assert report.ok, report.problems
    print(
        f"\nflapping: {passes} passes, {faults_served} faults served, records {expected}, "
        f"breaker opened {opened} and closed again {closed_after_open}"
    )


def test_circuit_breaker_opens_after_threshold_and_closes_after_cooldown(
    make_settings: Callable[..., Settings], engine: Engine
) -> None:
    cooldown = 0.3
    with FakeUpstream(WORLD) as upstream:
        settings = make_settings(
            sources=["coingecko"],
            coingecko_base_url=upstream.coingecko_url,
            top_n=10,
            retry_attempts=2,
            breaker_failure_threshold=2,
            breaker_cooldown=cooldown,
        )
        breaker = CircuitBreaker(engine, threshold=2, cooldown=cooldown)
        observed: list[tuple[str, str]] = []

        def one_pass() -> None:
            (result,) = run_pass(settings, engine)
            state = breaker.states().get("coingecko", {}).get("state", "closed")
            observed.append((result.status, state))

        upstream.inject("coingecko", *[Fault.http(500)] * 4)  # two runs of two attempts each
        one_pass()
        one_pass()
        one_pass()  # open: skipped without a request
        requests_while_open = len(upstream.requests("coingecko"))
        time.sleep(cooldown + 0.05)
        one_pass()  # half-open probe succeeds: closed
        upstream.inject("coingecko", *[Fault.http(500)] * 2)
        one_pass()  # one failure: still closed (threshold 2)

    assert observed == [
        ("failed", "closed"),
        ("failed", "open"),
        ("skipped", "open"),
        ("success", "closed"),
        ("failed", "closed"),
    ]
    assert requests_while_open == 4  # the skipped pass sent nothing
