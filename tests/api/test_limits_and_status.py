"""Partial runs count as successes, bounded metric labels, monotonic run counters, limits, secret scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.api.ratelimit import TokenBuckets
from kasparro.db.models import EtlRun, SchemaDrift
from kasparro.observability.metrics import method_label
from kasparro.scrub import Scrubber
from tests.api.conftest import ClientFactory, Seeded, TestClient
from tests.api.test_admin import ADMIN_KEY, FakeRunPass, _install


def _run(engine: Engine, **values: Any) -> int:
    now = datetime.now(UTC)
    row = {"trigger": "schedule", "started_at": now - timedelta(seconds=30)}
    if values.get("status") != "running":
        row |= {"finished_at": now - timedelta(seconds=20), "duration_seconds": 10.0}
    with engine.begin() as conn:
        return int(conn.execute(sa.insert(EtlRun).values(**row, **values)).inserted_primary_key[0])


def test_partial_runs_keep_health_fresh_and_count_as_successes(
    client: TestClient, engine: Engine
) -> None:
    for source in ("coinpaprika", "coingecko", "csv"):
        _run(engine, source=source, status="partial", quarantined=1)
    health = client.get("/health").json()
    assert health["status"] == "ok", health["reasons"]
    assert all(s["last_success_at"] is not None and not s["stale"] for s in health["sources"])
    _run(engine, source="csv", status="failed")
    stats = {s["source"]: s for s in client.get("/stats").json()["sources"]}
    assert stats["coinpaprika"]["success_rate"] == 1.0
    assert stats["csv"]["success_rate"] == 0.5
    metrics = client.get("/metrics").text
    assert 'kasparro_etl_last_success_timestamp_seconds{source="csv"}' in metrics


@pytest.mark.parametrize(
    ("method", "label"),
    [
        ("GET", "GET"),
        ("post", "POST"),
        ("OPTIONS", "OPTIONS"),
        ("PROPFIND", "OTHER"),
        ("X" * 40, "OTHER"),
    ],
)
def test_method_label_is_bounded(method: str, label: str) -> None:
    assert method_label(method) == label


def test_unknown_methods_are_counted_as_other(client: TestClient) -> None:
    assert client.request("PROPFIND", "/data").status_code == 405
    client.request("BREW", "/nope")
    text = client.get("/metrics").text
    assert 'http_requests_total{method="OTHER",route="/data",status="405"} 1.0' in text
    assert "PROPFIND" not in text
    assert "BREW" not in text


def test_run_counters_only_count_finished_runs(client: TestClient, engine: Engine) -> None:
    run_id = _run(engine, source="csv", status="running")
    during = client.get("/metrics").text
    assert 'kasparro_etl_runs_in_progress{source="csv"} 1.0' in during
    assert 'kasparro_etl_runs_total{source="csv"' not in during
    with engine.begin() as conn:
        conn.execute(
            sa.update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(status="success", finished_at=datetime.now(UTC), duration_seconds=1.0)
        )
    after = client.get("/metrics").text
    assert 'kasparro_etl_runs_in_progress{source="csv"} 0.0' in after
    assert 'kasparro_etl_runs_total{source="csv",status="success"} 1.0' in after
    assert 'status="running"' not in after


def test_token_buckets_forget_the_least_recent_client_beyond_the_cap() -> None:
    buckets = TokenBuckets(1, max_keys=3)
    for client in ("a", "b", "c"):
        assert buckets.take(client) == 0
    assert buckets.take("a") > 0, "a's bucket is empty"
    buckets.take("d")  # evicts b, the least recently used
    assert len(buckets) == 3
    assert buckets.take("b") == 0, "a forgotten client starts with a full bucket"
    assert buckets.blocked_for("a") > 0


def test_failed_admin_keys_are_limited_per_client(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, FakeRunPass())
    client = make_client(admin_api_key=ADMIN_KEY)
    statuses = [
        client.post("/runs", headers={"X-API-Key": f"guess-{i}"}).status_code for i in range(10)
    ]
    assert statuses == [403] * 10
    blocked = client.post("/runs", headers={"X-API-Key": ADMIN_KEY})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.json()["error"]["code"] == "rate_limited"
    with TestClient(client.app, client=("10.0.0.7", 1234)) as other:
        assert other.post("/runs", headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.get("/data").status_code == 200, "only admin attempts are limited"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token p@ss/w0rd! failed", "token *** failed"),
        (f"GET /x?key={quote('p@ss/w0rd!', safe='')}", "GET /x?key=***"),
        (f"GET /x?key={quote('p@ss/w0rd!', safe='').lower()}", "GET /x?key=***"),
        (f"form key={quote_plus('p@ss/w0rd!')}&a=1", "form key=***&a=1"),
        ("nothing secret here", "nothing secret here"),
        (None, None),
    ],
)
def test_scrubber_catches_plain_and_url_encoded_secrets(
    text: str | None, expected: str | None
) -> None:
    assert Scrubber(["p@ss/w0rd!", ""])(text) == expected


def test_no_database_password_or_encoded_secret_in_responses(
    make_client: ClientFactory, engine: Engine, db_url: str, seeded: Seeded
) -> None:
    password = "db-pa$$word-7"
    encoded_key = quote("cg key/9+", safe="")
    run_id = _run(
        engine,
        source="coingecko",
        status="failed",
        error=f"connect to postgresql://kasparro:{password}@db failed; url ?k={encoded_key}",
    )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(SchemaDrift).values(
                source="coingecko",
                run_id=run_id,
                field="api_key",
                kind="new",
                observed="string",
                sample_value=f"x-{password}-{encoded_key}",
                detected_at=datetime.now(UTC),
            )
        )
    reader = f"postgresql+psycopg://kasparro:{quote(password)}@127.0.0.1:1/unused"
    client = make_client(engine=engine, database_read_url=reader, coingecko_api_key="cg key/9+")
    responses = [
        client.get(path)
        for path in (f"/runs/{run_id}", "/runs", "/drift", f"/drift?run_id={run_id}", "/stats")
    ]
    assert [r.status_code for r in responses] == [200] * 5
    for response in responses:
        assert password not in response.text
        assert encoded_key not in response.text
        assert "cg key/9+" not in response.text
    detail = responses[0].json()
    assert detail["run"]["error"].count("***") == 2
    assert detail["drift"][0]["sample_value"] == "x-***-***"


def test_settle_heap_collects_then_freezes() -> None:
    import gc
    import weakref

    from kasparro.api.app import settle_heap

    class Node:
        other: object = None

    cycle = Node()
    cycle.other = cycle  # garbage only the cycle collector can free
    dead = weakref.ref(cycle)
    del cycle
    gc.unfreeze()
    try:
        settle_heap()
        assert dead() is None  # collected first, not frozen in for the process's lifetime
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
