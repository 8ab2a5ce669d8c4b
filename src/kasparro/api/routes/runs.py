"""``/runs``: ETL run history, one run in detail, two runs compared, and ``POST /runs`` to start a pass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response

from kasparro.api.context import request_id_of
from kasparro.api.deps import EngineDep, PageDep, ScrubDep, ServicesDep, TotalsDep
from kasparro.api.errors import ERROR_RESPONSES, ApiError
from kasparro.api.links import (
    COMPARE_LINKS,
    RUN_LINKS,
    RUNS_LINKS,
    TRIGGER_LINKS,
    with_links,
)
from kasparro.api.pagination import decode_cursor, pagination
from kasparro.api.responses import JsonResponse, read_snapshot, render, totals_key
from kasparro.api.routes.params import MAX_ID, SourceFilter, StatusFilter
from kasparro.db import status_queries as queries
from kasparro.schemas.api import META_PENDING, ErrorPublic
from kasparro.schemas.api_status import (
    AssetRef,
    CountDiff,
    DriftPublic,
    PriceMove,
    RunComparePublic,
    RunDetailPublic,
    RunPublic,
    RunsPublic,
    RunTriggerPublic,
    RunTriggerRequest,
)
from kasparro.scrub import Scrubber

router = APIRouter(tags=["runs"], responses=ERROR_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such run."}
}
COUNTERS = ("fetched", "loaded", "unchanged", "quarantined", "drift_events", "requests", "retries")
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="Run id.", examples=[7])]


def run_public(row: queries.Row, scrub: Scrubber) -> RunPublic:
    """A run as served: its error text scrubbed of every configured secret."""
    run = RunPublic.model_validate(row)
    run.error = scrub(run.error)
    return run


def drift_public(row: queries.Row, scrub: Scrubber) -> DriftPublic:
    """A drift event as served: its sample value scrubbed of every configured secret."""
    event = DriftPublic.model_validate(row)
    event.sample_value = scrub(event.sample_value)
    return event


def _load_run(conn: Any, run_id: int) -> queries.Row:
    row = queries.get_run(conn=conn, run_id=run_id)
    if row is None:
        raise ApiError(404, "not_found", f"run {run_id} does not exist")
    return row


@router.get(
    "/runs",
    response_model=RunsPublic,
    responses=with_links(200, RUNS_LINKS),
    summary="ETL run history",
)
def list_runs(
    request: Request,
    engine: EngineDep,
    scrub: ScrubDep,
    totals: TotalsDep,
    page: PageDep,
    source: SourceFilter = None,
    status: StatusFilter = None,
) -> Response:
    """Runs newest first, optionally filtered by source and status."""
    with read_snapshot(request, engine) as conn:
        count_key = totals_key(request, "runs", source=source, status=status)
        after = decode_cursor(page.cursor, spec="-id", kind="int")[1] if page.cursor else None
        result = queries.list_runs(
            conn=conn,
            source=source,
            status=status,
            after_id=after,
            offset=page.offset,
            limit=page.limit,
            total=totals.get(count_key),
        )
        totals.set(count_key, result.total)
        payload = RunsPublic(
            data=[run_public(row, scrub) for row in result.rows],
            pagination=pagination(result, limit=page.limit, spec="-id", key="id"),
            meta=META_PENDING,
        )
    return render(request, payload)


@router.get(
    "/runs/compare",
    response_model=RunComparePublic,
    responses={**_NOT_FOUND, **with_links(200, COMPARE_LINKS)},
    summary="Compare two runs",
)
def compare_runs(
    request: Request,
    engine: EngineDep,
    scrub: ScrubDep,
    a: Annotated[int, Query(ge=1, le=MAX_ID, description="The earlier run.", examples=[6])],
    b: Annotated[
        int, Query(ge=1, le=MAX_ID, description="The later run (same source).", examples=[7])
    ],
    threshold: Annotated[
        float,
        Query(
            ge=0,
            le=1e6,
            allow_inf_nan=False,
            description="Report price moves above this many percent.",
            examples=[1.0],
        ),
    ] = 1.0,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="Most assets listed per section.", examples=[100])
    ] = 100,
) -> Response:
    """What changed between two runs of one source: counters, assets added or removed, prices that moved."""
    with read_snapshot(request, engine) as conn:
        run_a, run_b = _load_run(conn, a), _load_run(conn, b)
        if run_a["source"] != run_b["source"]:
            raise ApiError(
                422,
                "validation_error",
                "runs a and b belong to different sources",
                details={"a": run_a["source"], "b": run_b["source"]},
            )
        seen_a, seen_b = (
            queries.run_observations(conn=conn, run_id=a),
            queries.run_observations(conn=conn, run_id=b),
        )
        counts = {
            name: CountDiff(
                a=int(run_a[name] or 0),
                b=int(run_b[name] or 0),
                delta=int(run_b[name] or 0) - int(run_a[name] or 0),
            )
            for name in COUNTERS
        }
        counts["observed_assets"] = CountDiff(
            a=len(seen_a), b=len(seen_b), delta=len(seen_b) - len(seen_a)
        )
        moved = []
        for asset_id in seen_a.keys() & seen_b.keys():
            (symbol, price_a), (_, price_b) = seen_a[asset_id], seen_b[asset_id]
            if price_a is None or price_b is None or price_a == 0:
                continue
            change = (price_b - price_a) / price_a * 100
            if abs(change) > threshold:
                moved.append(
                    PriceMove(
                        asset_id=asset_id,
                        symbol=symbol,
                        price_a=price_a,
                        price_b=price_b,
                        change_pct=round(change, 6),
                    )
                )
        moved.sort(key=lambda m: (-abs(m.change_pct), m.asset_id))

        def refs(seen: dict[int, tuple[str, float | None]], ids: set[int]) -> list[AssetRef]:
            return [
                AssetRef(asset_id=i, symbol=seen[i][0], price_usd=seen[i][1])
                for i in sorted(ids)[:limit]
            ]

        payload = RunComparePublic(
            a=run_public(run_a, scrub),
            b=run_public(run_b, scrub),
            counts=counts,
            threshold_pct=threshold,
            assets_added=refs(seen_b, seen_b.keys() - seen_a.keys()),
            assets_removed=refs(seen_a, seen_a.keys() - seen_b.keys()),
            price_moved=moved[:limit],
            meta=META_PENDING,
        )
    return render(request, payload)


@router.get(
    "/runs/{run_id}",
    response_model=RunDetailPublic,
    responses={**_NOT_FOUND, **with_links(200, RUN_LINKS)},
    summary="One run",
)
def get_run(request: Request, engine: EngineDep, scrub: ScrubDep, run_id: RunId) -> Response:
    """One run with the drift events it detected and how many of its records were quarantined."""
    with read_snapshot(request, engine) as conn:
        row = _load_run(conn, run_id)
        payload = RunDetailPublic(
            run=run_public(row, scrub),
            drift=[drift_public(d, scrub) for d in queries.run_drift(conn=conn, run_id=run_id)],
            quarantine_count=queries.run_quarantine_count(conn=conn, run_id=run_id),
            meta=META_PENDING,
        )
    return render(request, payload)


_TRIGGER_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in (
        (400, "The body could not be read as JSON (for example, it is not UTF-8)."),
        (401, "X-API-Key missing."),
        (403, "X-API-Key wrong."),
        (404, "Disabled: no admin key configured."),
        (409, "A pass started through the API is still running."),
        (429, "Too many failed X-API-Key attempts from this client."),
    )
}


@router.post(
    "/runs",
    status_code=202,
    response_model=RunTriggerPublic,
    responses={**_TRIGGER_ERRORS, **with_links(202, TRIGGER_LINKS)},
    summary="Start an ETL pass",
)
def trigger_run(
    request: Request,
    services: ServicesDep,
    body: RunTriggerRequest | None = None,
    x_api_key: Annotated[
        str | None,
        Header(
            alias="X-API-Key",
            description="The admin key (KASPARRO_ADMIN_API_KEY).",
            examples=["s3cret"],
        ),
    ] = None,
) -> Response:
    """Start one ETL pass in the background. Needs `X-API-Key`; disabled (404) when no admin key is set."""
    client = request.client.host if request.client else "unknown"
    services.trigger.authorize(x_api_key, client=client)
    enabled = services.settings.sources
    sources: list[str] = (
        list(dict.fromkeys(body.sources)) if body and body.sources else list(enabled)
    )
    unknown = [s for s in sources if s not in enabled]
    if unknown:
        raise ApiError(
            422,
            "validation_error",
            "sources not enabled",
            details={"sources": unknown, "enabled": enabled},
        )
    try:
        from kasparro.pipeline.runner import run_pass
    except ImportError:
        raise ApiError(503, "unavailable", "the ETL pipeline is not installed") from None
    request_id = request_id_of(request.scope) or ""
    services.trigger.start(run_pass, sources=sources, request_id=request_id)
    payload = RunTriggerPublic(
        status="accepted",
        trigger="api",
        sources=sources,
        requested_at=datetime.now(UTC),
        request_id=request_id,
    )
    return JsonResponse(payload, status_code=202)
