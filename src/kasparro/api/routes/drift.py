"""``GET /drift``: schema drift events, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from kasparro.api.deps import EngineDep, PageDep, ScrubDep, TotalsDep
from kasparro.api.errors import ERROR_RESPONSES
from kasparro.api.links import DRIFT_LINKS, with_links
from kasparro.api.pagination import decode_cursor, pagination
from kasparro.api.responses import read_snapshot, render, totals_key
from kasparro.api.routes.params import RunIdFilter, SourceFilter
from kasparro.api.routes.runs import drift_public
from kasparro.db import status_queries as queries
from kasparro.schemas.api import META_PENDING
from kasparro.schemas.api_status import DriftListPublic

router = APIRouter(tags=["runs"], responses=ERROR_RESPONSES)


@router.get(
    "/drift",
    response_model=DriftListPublic,
    responses=with_links(200, DRIFT_LINKS),
    summary="Schema drift events",
)
def list_drift(
    request: Request,
    engine: EngineDep,
    scrub: ScrubDep,
    totals: TotalsDep,
    page: PageDep,
    source: SourceFilter = None,
    run_id: RunIdFilter = None,
) -> Response:
    """Changes detected in the sources' payload shapes, newest first."""
    with read_snapshot(request, engine) as conn:
        count_key = totals_key(request, "drift", source=source, run_id=run_id)
        after = decode_cursor(page.cursor, spec="-id", kind="int")[1] if page.cursor else None
        result = queries.list_drift(
            conn=conn,
            source=source,
            run_id=run_id,
            after_id=after,
            offset=page.offset,
            limit=page.limit,
            total=totals.get(count_key),
        )
        totals.set(count_key, result.total)
        payload = DriftListPublic(
            data=[drift_public(row, scrub) for row in result.rows],
            pagination=pagination(result, limit=page.limit, spec="-id", key="id"),
            meta=META_PENDING,
        )
    return render(request, payload)
