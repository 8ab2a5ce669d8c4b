"""``GET /stats``: per-source ETL statistics and overall totals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from kasparro.api.deps import EngineDep, ScrubDep, SettingsDep
from kasparro.api.errors import ERROR_RESPONSES
from kasparro.api.responses import read_snapshot, render
from kasparro.api.routes.runs import run_public
from kasparro.db import status_queries as queries
from kasparro.schemas.api import META_PENDING
from kasparro.schemas.api_status import BreakerPublic, SourceStats, StatsPublic, StatsTotals

router = APIRouter(tags=["stats"], responses=ERROR_RESPONSES)
_CLOSED = BreakerPublic(state="closed", consecutive_failures=0, opened_at=None)


@router.get("/stats", response_model=StatsPublic, summary="ETL statistics")
def get_stats(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    scrub: ScrubDep,
    window: Annotated[
        int,
        Query(
            ge=1,
            le=1000,
            description="Finished runs per source considered for success_rate "
            "(success and partial count as successful).",
            examples=[20],
        ),
    ] = 20,
) -> Response:
    """Rows, coverage, last run, success rate, drift and quarantine per source, and totals."""
    with read_snapshot(request, engine) as conn:
        counts = queries.counts_by_source(conn=conn)
        latest = queries.latest_runs(conn=conn)
        breaker_rows = queries.breakers(conn=conn)
        names = list(dict.fromkeys([*settings.sources, *sorted(counts), *sorted(latest)]))
        sources = []
        for name in names:
            c = counts.get(name, {})
            statuses = queries.recent_statuses(conn=conn, source=name, limit=window)
            successes = sum(s in queries.SUCCESSFUL_STATUSES for s in statuses)
            rate = round(successes / len(statuses), 4) if statuses else None
            breaker = (
                BreakerPublic.model_validate(breaker_rows[name])
                if name in breaker_rows
                else _CLOSED
            )
            last = latest.get(name)
            sources.append(
                SourceStats(
                    source=name,
                    unified_rows=c.get("unified_rows", 0),
                    raw_rows=c.get("raw_rows", 0),
                    assets_covered=c.get("assets_covered", 0),
                    runs=c.get("runs", 0),
                    last_run=run_public(last, scrub) if last else None,
                    success_rate=rate,
                    drift_events=c.get("drift_events", 0),
                    quarantined=c.get("quarantined", 0),
                    circuit_breaker=breaker,
                )
            )
        totals = StatsTotals(
            unified_rows=sum(s.unified_rows for s in sources),
            raw_rows=sum(s.raw_rows for s in sources),
            assets=queries.count_assets(conn=conn),
            runs=sum(s.runs for s in sources),
            drift_events=sum(s.drift_events for s in sources),
            quarantined=sum(s.quarantined for s in sources),
        )
    return render(
        request, StatsPublic(window=window, sources=sources, totals=totals, meta=META_PENDING)
    )
