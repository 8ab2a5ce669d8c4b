"""Request ids, access log, CORS, rate limiting, caching with ETags, and 503 when the database is down."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.db.models import DataVersion, EtlRun, UnifiedCrypto
from kasparro.observability.logging import JsonFormatter
from tests.api.conftest import NOW, ClientFactory, Seeded, TestClient, bump_version


@pytest.mark.parametrize(
    ("given", "echoed"),
    [
        ("abc-123", True),
        ("trace.id:42_x", True),
        ("bad id with spaces", False),
        ("x" * 129, False),
        (None, False),
    ],
)
def test_request_id_is_accepted_or_generated_and_echoed(
    client: TestClient, given: str | None, echoed: bool
) -> None:
    headers = {"X-Request-ID": given} if given else {}
    response = client.get("/data", headers=headers)
    request_id = response.headers["x-request-id"]
    assert (request_id == given) is echoed
    if not echoed:
        assert len(request_id) == 32
        assert int(request_id, 16) >= 0
    assert response.json()["meta"]["request_id"] == request_id


def test_request_id_on_errors_and_unknown_routes(client: TestClient) -> None:
    for path in ("/nope", "/data?limit=0", "/runs/999"):
        response = client.get(path, headers={"X-Request-ID": "err-1"})
        assert response.headers["x-request-id"] == "err-1"
        assert response.json()["request_id"] == "err-1"


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(lambda text: text))  # type: ignore[arg-type]
    logger = logging.getLogger("kasparro.api.access")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_one_json_access_line_per_request_with_route_template(
    client: TestClient, seeded: Seeded, access_lines: io.StringIO
) -> None:
    client.get("/runs/1", headers={"X-Request-ID": "log-1"})
    client.get("/runs/2", headers={"X-Request-ID": "log-2"})
    lines = [orjson.loads(line) for line in access_lines.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["route"] == "/runs/{run_id}"
    assert (first["method"], first["status"], first["request_id"]) == ("GET", 200, "log-1")
    assert first["latency_ms"] >= 0
    assert first["client"] == "testclient"


@pytest.mark.parametrize(
    ("origin", "allowed"), [("http://localhost:3000", True), ("https://evil.example", False)]
)
def test_cors_allow_list(client: TestClient, origin: str, allowed: bool) -> None:
    simple = client.get("/data", headers={"Origin": origin})
    assert (simple.headers.get("access-control-allow-origin") == origin) is allowed
    if not allowed:
        assert "access-control-allow-origin" not in simple.headers
    preflight = client.options(
        "/data",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-Request-ID",
        },
    )
    assert (preflight.status_code == 200) is allowed
    assert (preflight.headers.get("access-control-allow-origin") == origin) is allowed


def test_cors_origins_come_from_settings(make_client: ClientFactory) -> None:
    client = make_client(cors_origins=["https://dash.example"])
    assert (
        client.get("/", headers={"Origin": "https://dash.example"}).headers[
            "access-control-allow-origin"
        ]
        == "https://dash.example"
    )
    assert (
        "access-control-allow-origin"
        not in client.get("/", headers={"Origin": "http://localhost:3000"}).headers
    )


def test_rate_limit_answers_429_with_retry_after(make_client: ClientFactory) -> None:
    client = make_client(rate_limit_per_minute=3)
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get("/data", headers={"X-Request-ID": "rl-1"})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert limited.json()["request_id"] == "rl-1"
    assert client.get("/health/live").status_code == 200, "probes are never limited"
    with TestClient(client.app, client=("10.0.0.9", 1234)) as other:
        assert other.get("/").status_code == 200, "limits are per client"


def test_rate_limit_is_on_by_default_and_zero_turns_it_off(
    make_settings: Callable[..., Settings], client: TestClient
) -> None:
    assert make_settings().rate_limit_per_minute == 600
    assert all(client.get("/").status_code == 200 for _ in range(30)), "the fixture sets 0"


def test_cache_hit_etag_and_304(client: TestClient, seeded: Seeded) -> None:
    first = client.get("/data", params={"limit": 5, "sort": "id"}, headers={"X-Request-ID": "c-1"})
    assert first.headers["x-cache"] == "miss"
    etag = first.headers["etag"]
    second = client.get("/data", params={"sort": "id", "limit": 5}, headers={"X-Request-ID": "c-2"})
    assert second.headers["x-cache"] == "hit", "parameter order does not matter"
    assert second.headers["etag"] == etag
    assert second.json()["data"] == first.json()["data"]
    assert second.json()["meta"]["request_id"] == "c-2"
    not_modified = client.get(
        "/data", params={"limit": 5, "sort": "id"}, headers={"If-None-Match": etag}
    )
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert client.get("/data", params={"limit": 6, "sort": "id"}).headers["etag"] != etag


def test_cache_is_invalidated_by_a_data_version_bump(
    client: TestClient, engine: Engine, seeded: Seeded
) -> None:
    before = client.get("/data", params={"symbol": "zzz"})
    assert before.json()["pagination"]["total"] == 0
    with engine.begin() as conn:
        conn.execute(
            sa.insert(UnifiedCrypto).values(
                asset_id=1,
                source="extra",
                coin_id="zzz",
                symbol="ZZZ",
                name="Z",
                ingested_at=NOW,
                price_usd=1.0,
            )
        )
    stale = client.get("/data", params={"symbol": "zzz"})
    assert stale.headers["x-cache"] == "hit"
    assert stale.json()["pagination"]["total"] == 0
    bump_version(engine)
    fresh = client.get(
        "/data", params={"symbol": "zzz"}, headers={"If-None-Match": before.headers["etag"]}
    )
    assert fresh.status_code == 200, "an old ETag no longer matches"
    assert fresh.headers["x-cache"] == "miss"
    assert fresh.json()["pagination"]["total"] == 1
    assert fresh.json()["meta"]["data_version"] == 2
    assert fresh.headers["etag"] != before.headers["etag"]


def test_run_history_refreshes_when_a_run_is_recorded(
    client: TestClient, engine: Engine, seeded: Seeded
) -> None:
    assert client.get("/runs").json()["pagination"]["total"] == 6
    with engine.begin() as conn:
        conn.execute(
            sa.insert(EtlRun).values(source="csv", status="running", trigger="api", started_at=NOW)
        )
    assert client.get("/runs").json()["pagination"]["total"] == 7


def test_data_version_is_reread_only_after_its_ttl(
    make_client: ClientFactory, engine: Engine, seeded: Seeded
) -> None:
    client = make_client(data_version_ttl=3600)
    assert client.get("/data").json()["meta"]["data_version"] == 1
    bump_version(engine)
    cached = client.get("/data")
    assert cached.headers["x-cache"] == "hit"
    assert cached.json()["meta"]["data_version"] == 1


def test_cache_can_be_disabled(make_client: ClientFactory, seeded: Seeded) -> None:
    client = make_client(cache_max_entries=0)
    assert [client.get("/data").headers["x-cache"] for _ in range(2)] == ["miss", "miss"]


def test_memory_cache_evicts_least_recently_used(
    make_client: ClientFactory, seeded: Seeded
) -> None:
    client = make_client(cache_max_entries=2)
    for limit in (1, 2, 3):
        client.get("/data", params={"limit": limit})
    assert client.get("/data", params={"limit": 3}).headers["x-cache"] == "hit"
    assert client.get("/data", params={"limit": 1}).headers["x-cache"] == "miss"


def test_redis_cache_is_shared_between_app_instances(
    make_client: ClientFactory, engine: Engine, seeded: Seeded
) -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("Redis is not running")
    with engine.begin() as conn:  # a version no other test uses, so keys cannot collide
        conn.execute(sa.update(DataVersion).values(version=uuid.uuid4().int % 10**12))
    first = make_client(redis_url="redis://127.0.0.1:6379/0")
    second = make_client(redis_url="redis://127.0.0.1:6379/0")
    assert first.get("/stats").headers["x-cache"] == "miss"
    shared = second.get("/stats", headers={"X-Request-ID": "r-2"})
    assert shared.headers["x-cache"] == "hit"
    assert shared.json()["meta"]["request_id"] == "r-2"


def test_unreachable_redis_degrades_to_no_cache(make_client: ClientFactory, seeded: Seeded) -> None:
    client = make_client(redis_url="redis://127.0.0.1:1/0")
    responses = [client.get("/data") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert [r.headers["x-cache"] for r in responses] == ["miss", "miss"]


def _down_url(db_url: str, tmp_path: Path) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}"  # a directory: SQLite cannot open it
    return sa.engine.make_url(db_url).set(port=1).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "path",
    [
        "/data",
        "/stats",
        "/runs",
        "/runs/1",
        "/assets",
        "/assets/1",
        "/drift",
        "/runs/compare?a=1&b=2",
    ],
)
def test_database_down_is_503_with_the_error_shape(
    make_client: ClientFactory, db_url: str, tmp_path: Path, path: str
) -> None:
    client = make_client(database_url=_down_url(db_url, tmp_path))
    response = client.get(path, headers={"X-Request-ID": "down-1"})
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "database_unavailable"
    assert body["request_id"] == "down-1"
    assert "Retry-After" in response.headers


def test_database_down_health_is_503_but_liveness_and_root_answer(
    make_client: ClientFactory, db_url: str, tmp_path: Path
) -> None:
    client = make_client(database_url=_down_url(db_url, tmp_path))
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "down"
    assert health.json()["database"]["reachable"] is False
    assert client.get("/health/live").status_code == 200
    assert client.get("/").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "kasparro_etl_metrics_up 0.0" in metrics.text


def test_unexpected_errors_become_500_with_the_error_shape(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kasparro.db import status_queries

    def explode(**_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(status_queries, "list_drift", explode)
    response = client.get("/drift", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "an unexpected error occurred",
            "details": None,
        },
        "request_id": "boom-1",
    }
    assert "secret internals" not in response.text


def test_more_concurrent_requests_than_threads_and_connections_never_starve_the_pool(
    make_client: ClientFactory, db_url: str, seeded: Seeded
) -> None:
    """Handlers take their connection in their own thread, so a full threadpool cannot deadlock the pool."""
    from concurrent.futures import ThreadPoolExecutor

    small = sa.create_engine(db_url, pool_size=2, max_overflow=0, pool_timeout=3)
    try:
        client = make_client(engine=small, cache_max_entries=0)
        with ThreadPoolExecutor(max_workers=64) as pool:
            statuses = list(
                pool.map(
                    lambda i: client.get("/data", params={"limit": 1 + i % 7}).status_code,
                    range(192),
                )
            )
    finally:
        small.dispose()
    assert statuses == [200] * 192
