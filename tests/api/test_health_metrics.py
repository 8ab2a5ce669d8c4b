"""``/health`` (ok, degraded with reasons) and ``/metrics`` (HTTP and database-derived ETL metrics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.db.models import CircuitBreaker, EtlRun
from tests.api.conftest import ClientFactory, Seeded, TestClient


def _runs(engine: Engine, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for given in rows:
            row = dict(given)
            ago = timedelta(seconds=row.pop("ago", 60))
            conn.execute(
                sa.insert(EtlRun).values(
                    trigger="schedule",
                    started_at=now - ago,
                    finished_at=now - ago + timedelta(seconds=2),
                    duration_seconds=2.0,
                    **row,
                )
            )


def _fresh(engine: Engine) -> None:
    _runs(engine, [{"source": s, "status": "success"} for s in ("coinpaprika", "coingecko", "csv")])


def test_health_ok_when_every_source_is_fresh(client: TestClient, engine: Engine) -> None:
    _fresh(engine)
    response = client.get("/health", headers={"X-Request-ID": "h-1"})
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["reasons"] == []
    assert body["database"]["reachable"] is True
    assert body["database"]["latency_ms"] >= 0
    assert body["stale_after_seconds"] == 2 * 6 * 3600
    assert [s["source"] for s in body["sources"]] == ["coinpaprika", "coingecko", "csv"]
    assert all(s["last_run_status"] == "success" and not s["stale"] for s in body["sources"])
    assert body["request_id"] == "h-1"


def test_health_degraded_before_any_run(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "degraded"
    assert "coingecko: no successful run yet" in body["reasons"]


@pytest.mark.parametrize(
    ("extra", "settings", "reason"),
    [
        (
            [{"source": "csv", "status": "success", "ago": 7200}],
            {"stale_after": 3600},
            "csv: data is stale",
        ),
        (
            [{"source": "csv", "status": "success", "ago": 3 * 3600}],
            {"schedule": "1h"},
            "csv: data is stale",
        ),
        ([{"source": "csv", "status": "failed"} for _ in range(3)], {}, "csv: last 3 runs failed"),
    ],
)
def test_health_degraded_reasons(
    make_client: ClientFactory,
    engine: Engine,
    extra: list[dict[str, Any]],
    settings: dict[str, Any],
    reason: str,
) -> None:
    _runs(
        engine,
        [{"source": s, "status": "success", "ago": 120} for s in ("coinpaprika", "coingecko")],
    )
    if "failed" in str(extra):
        _runs(engine, [{"source": "csv", "status": "success", "ago": 300}])
    _runs(engine, extra)
    body = make_client(**settings).get("/health").json()
    assert body["status"] == "degraded"
    assert any(r.startswith(reason) for r in body["reasons"]), body["reasons"]
    assert len(body["reasons"]) == 1


def test_health_reports_open_circuit_breakers(client: TestClient, engine: Engine) -> None:
    _fresh(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(CircuitBreaker).values(
                source="coingecko",
                state="open",
                consecutive_failures=3,
                opened_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
    body = client.get("/health").json()
    assert body["reasons"] == ["coingecko: circuit breaker open"]
    assert {s["source"]: s["circuit_breaker"] for s in body["sources"]}["coingecko"] == "open"


def test_health_live_is_cheap(client: TestClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_metrics_expose_http_and_etl_series(
    client: TestClient, engine: Engine, seeded: Seeded
) -> None:
    client.get("/runs/1")
    client.get("/runs/2")
    client.get("/nope/123")
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/runs/{run_id}",status="200"} 2.0' in text
    assert 'route="<unmatched>"' in text
    assert '/runs/1"' not in text, "raw paths never become labels"
    assert "/nope/123" not in text
    assert "http_request_duration_seconds_bucket" in text
    assert 'kasparro_etl_runs_total{source="coingecko",status="failed"} 1.0' in text
    assert 'kasparro_etl_records_total{source="coinpaprika",stage="fetched"} 14.0' in text
    assert 'kasparro_etl_drift_events_total{source="coingecko"} 2.0' in text
    assert 'kasparro_etl_quarantined_records_total{source="coingecko"} 1.0' in text
    assert 'kasparro_circuit_breaker_open{source="coingecko"} 1.0' in text
    assert 'kasparro_etl_run_duration_seconds_count{source="csv"} 2.0' in text
    assert 'kasparro_etl_last_success_timestamp_seconds{source="csv"}' in text
    assert "process_cpu_seconds_total" in text or "python_info" in text


def test_etl_metrics_follow_runs_written_by_another_process(
    client: TestClient, engine: Engine
) -> None:
    before = client.get("/metrics").text
    assert 'kasparro_etl_runs_total{source="csv",status="success"}' not in before
    _runs(
        engine, [{"source": "csv", "status": "success", "fetched": 10, "loaded": 9}]
    )  # a separate writer
    after = client.get("/metrics").text
    assert 'kasparro_etl_runs_total{source="csv",status="success"} 1.0' in after
    assert 'kasparro_etl_records_total{source="csv",stage="loaded"} 9.0' in after
