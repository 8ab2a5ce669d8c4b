"""``GET /health`` (database, freshness, failing sources, breakers) and the cheap ``GET /health/live``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.responses import Response

from kasparro.api.context import request_id_of
from kasparro.api.deps import ApiServices, ServicesDep
from kasparro.api.responses import JsonResponse
from kasparro.config import Settings
from kasparro.db import status_queries as queries
from kasparro.pipeline.schedule import parse_schedule
from kasparro.schemas.api import LivePublic
from kasparro.schemas.api_status import DatabaseHealth, HealthPublic, SourceHealth

router = APIRouter(tags=["health"])


def stale_after_seconds(settings: Settings) -> float:
    """The staleness limit: ``KASPARRO_STALE_AFTER``, else twice the schedule's period."""
    if settings.stale_after:
        return settings.stale_after
    return 2 * parse_schedule(settings.schedule).period.total_seconds()


def _age(now: datetime, then: datetime | None) -> float | None:
    return round((now - then).total_seconds(), 3) if then is not None else None


def _source_health(
    conn: Connection, settings: Settings, now: datetime, limit: float
) -> tuple[list[SourceHealth], list[str]]:
    latest = queries.latest_runs(conn=conn)
    successes = queries.last_successes(conn=conn)
    breaker_rows = queries.breakers(conn=conn)
    threshold = settings.breaker_failure_threshold
    sources, reasons = [], []
    for name in settings.sources:
        run: dict[str, Any] = dict(latest.get(name) or {})
        success = successes.get(name)
        statuses = queries.recent_statuses(conn=conn, source=name, limit=threshold)
        failures = next((i for i, s in enumerate(statuses) if s != "failed"), len(statuses))
        breaker = str(breaker_rows[name]["state"]) if name in breaker_rows else "closed"
        success_age = _age(now, success)
        stale = success_age is None or success_age > limit
        if success is None:
            reasons.append(f"{name}: no successful run yet")
        elif stale:
            reasons.append(
                f"{name}: data is stale (last success {int(success_age or 0)}s ago, limit {int(limit)}s)"
            )
        if failures >= threshold:
            reasons.append(f"{name}: last {failures} runs failed")
        if breaker == "open":
            reasons.append(f"{name}: circuit breaker open")
        sources.append(
            SourceHealth(
                source=name,
                last_run_status=run.get("status"),
                last_run_at=run.get("started_at"),
                last_run_age_seconds=_age(now, run.get("started_at")),
                last_success_at=success,
                last_success_age_seconds=success_age,
                stale=stale,
                consecutive_failures=failures,
                circuit_breaker=breaker,
            )
        )
    return sources, reasons


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={
        503: {
            "model": HealthPublic,
            "description": "The database is unreachable, or its schema is not ready yet.",
        }
    },
    summary="Service health",
)
async def health(request: Request, services: ServicesDep) -> Response:
    """`ok`, `degraded` with reasons (stale data, failing sources, open breakers), or 503 when the
    database is down or its schema not ready yet."""
    return await anyio.to_thread.run_sync(
        _health, request_id_of(request.scope) or "", services, limiter=services.ops_threads
    )


def _health(request_id: str, services: ApiServices) -> Response:
    settings = services.settings
    now = datetime.now(UTC)
    limit = stale_after_seconds(settings)
    latency: float | None = None
    try:
        started = time.perf_counter()
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            latency = round((time.perf_counter() - started) * 1000, 3)
            sources, reasons = _source_health(conn, settings, now, limit)
    except (DBAPIError, PoolTimeoutError):
        # it answered, but has no tables yet: a service that started before its database brings
        # the schema to head the moment the database answers
        reachable = latency is not None and _schema_missing(services)
        down = HealthPublic(
            status="down",
            reasons=["database schema not ready" if reachable else "database unreachable"],
            database=DatabaseHealth(reachable=reachable, latency_ms=latency),
            sources=[],
            stale_after_seconds=limit,
            checked_at=now,
            request_id=request_id,
        )
        return JsonResponse(
            down, status_code=503, headers={"Retry-After": "5", "Cache-Control": "no-store"}
        )
    report = HealthPublic(
        status="degraded" if reasons else "ok",
        reasons=reasons,
        database=DatabaseHealth(reachable=True, latency_ms=latency),
        sources=sources,
        stale_after_seconds=limit,
        checked_at=now,
        request_id=request_id,
    )
    return JsonResponse(report, headers={"Cache-Control": "no-store"})


def _schema_missing(services: ApiServices) -> bool:
    try:
        with services.engine.connect() as conn:
            return not inspect(conn).has_table("etl_run")
    except (DBAPIError, PoolTimeoutError):
        return False  # away again: reported as unreachable


@router.get("/health/live", response_model=LivePublic, summary="Liveness probe")
async def live() -> Response:
    """Answers as long as the process serves requests; never touches the database."""
    return JsonResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})
