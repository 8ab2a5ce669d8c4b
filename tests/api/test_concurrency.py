"""How one API process shares its threads and its reads of the data version under load."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event

from kasparro.api.cache import DataState, DataVersionTracker
from kasparro.db import queries
from tests.api.conftest import ClientFactory, Seeded


async def _handler_threads() -> float:
    return anyio.to_thread.current_default_thread_limiter().total_tokens


@pytest.mark.parametrize("threads", [1, 3])
def test_request_handlers_share_as_many_threads_as_configured(
    make_client: ClientFactory, threads: int
) -> None:
    client = make_client(api_threads=threads)
    assert client.portal is not None
    assert client.portal.call(_handler_threads) == threads
    assert client.get("/data?limit=5").status_code == 200


def _count_reads(engine: Engine) -> list[str]:
    reads: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("SELECT") and "data_version" in statement:
            reads.append(statement)

    return reads


def test_an_expired_state_is_re_read_by_one_claimant_while_others_keep_the_old_one(
    engine: Engine,
) -> None:
    tracker = DataVersionTracker(engine, ttl=0.0)  # every state is expired at once
    first = tracker.current()
    reads = _count_reads(engine)
    assert tracker.fresh() is None  # expired, and nobody is refreshing it
    assert tracker.claim() is True
    assert tracker.claim() is False  # one claimant at a time
    assert tracker.fresh() == first  # the others answer from the remembered state, no read
    assert reads == []
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE data_version SET version = version + 1"))
    refreshed = tracker.refresh_claimed()
    assert refreshed.version == first.version + 1
    assert len(reads) == 1
    assert tracker.fresh() is None  # the claim is given up with the read
    assert tracker.claim() is True


def test_an_abandoned_claim_is_taken_over_after_its_timeout(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request cancelled while waiting for a thread never refreshes; its claim must not keep
    every later request on an old state forever."""
    tracker = DataVersionTracker(engine, ttl=0.0)
    tracker.current()
    monkeypatch.setattr(DataVersionTracker, "CLAIM_TIMEOUT", 0.0)
    assert tracker.claim() is True
    assert tracker.fresh() is None  # the claim has already timed out
    assert tracker.claim() is True


def test_the_first_read_has_nothing_to_hand_out_and_is_not_claimed(engine: Engine) -> None:
    tracker = DataVersionTracker(engine, ttl=10.0)
    assert tracker.fresh() is None
    assert tracker.claim() is False  # nothing remembered yet: every request reads (and waits)
    assert isinstance(tracker.current(), DataState)
    assert tracker.fresh() is not None


@pytest.mark.parametrize(("cache_entries", "renders"), [(2048, 1), (0, 6)])
def test_identical_requests_that_miss_together_are_rendered_once(
    make_client: ClientFactory,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    cache_entries: int,
    renders: int,
) -> None:
    """Six identical requests arrive while the first is still rendering: with the cache on they
    wait for that body; with it off each renders its own."""
    calls: list[float] = []
    original = queries.list_records

    def slow_list_records(**kwargs: Any) -> Any:
        calls.append(time.monotonic())
        time.sleep(0.3)
        return original(**kwargs)

    monkeypatch.setattr(queries, "list_records", slow_list_records)
    client = make_client(api_threads=6, cache_max_entries=cache_entries)
    client.get("/health")  # the data version is known before the herd arrives
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: client.get("/data?limit=5"), range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    assert len({tuple(row["coin_id"] for row in r.json()["data"]) for r in responses}) == 1
    assert len(calls) == renders
    if cache_entries:
        assert sorted(r.headers["x-cache"] for r in responses) == ["hit"] * 5 + ["miss"]


def test_probes_and_scrapes_do_not_queue_behind_busy_handlers(
    make_client: ClientFactory, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only handler thread is held by a slow /data request; /health and /metrics still
    answer, on threads of their own, before it finishes."""
    release = threading.Event()
    entered = threading.Event()
    original = queries.list_records

    def held_list_records(**kwargs: Any) -> Any:
        entered.set()
        release.wait(10)
        return original(**kwargs)

    monkeypatch.setattr(queries, "list_records", held_list_records)
    client = make_client(api_threads=1, cache_max_entries=0)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(client.get, "/data?limit=5")
        assert entered.wait(10)
        try:
            assert client.get("/health").status_code == 200
            assert client.get("/metrics").status_code == 200
            assert not slow.done()  # the handler thread was still busy the whole time
        finally:
            release.set()
        assert slow.result(timeout=10).status_code == 200
