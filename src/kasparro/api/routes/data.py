"""``GET /data``: unified records with filters, an allow-listed sort and keyset pagination."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from kasparro.api.deps import EngineDep, PageDep, TotalsDep
from kasparro.api.errors import ERROR_RESPONSES
from kasparro.api.links import DATA_LINKS, with_links
from kasparro.api.pagination import ValueKind, decode_cursor, pagination
from kasparro.api.responses import read_snapshot, render, totals_key
from kasparro.api.routes.params import MAX_ID, PRINTABLE, SourceFilter, SymbolFilter
from kasparro.db import queries
from kasparro.schemas.api import META_PENDING, DataPublic, RecordPublic

router = APIRouter(tags=["data"], responses=ERROR_RESPONSES)

SortParam = Literal[
    "id",
    "-id",
    "rank",
    "-rank",
    "symbol",
    "-symbol",
    "name",
    "-name",
    "price_usd",
    "-price_usd",
    "market_cap_usd",
    "-market_cap_usd",
    "volume_24h_usd",
    "-volume_24h_usd",
    "percent_change_24h",
    "-percent_change_24h",
    "ingested_at",
    "-ingested_at",
]
SORT_KINDS: dict[str, ValueKind] = {
    "id": "int",
    "rank": "int",
    "symbol": "str",
    "name": "str",
    "price_usd": "float",
    "market_cap_usd": "float",
    "volume_24h_usd": "float",
    "percent_change_24h": "float",
    "ingested_at": "datetime",
}


@router.get(
    "/data",
    response_model=DataPublic,
    responses=with_links(200, DATA_LINKS),
    summary="Unified market records",
)
def list_data(
    request: Request,
    engine: EngineDep,
    totals: TotalsDep,
    page: PageDep,
    symbol: SymbolFilter = None,
    source: SourceFilter = None,
    asset_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Canonical asset id.", examples=[1])
    ] = None,
    coin_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            pattern=PRINTABLE,
            description="The source's own coin id.",
            examples=["bitcoin"],
        ),
    ] = None,
    min_price: Annotated[
        float | None,
        Query(
            ge=0,
            le=1e18,
            allow_inf_nan=False,
            description="Lowest price_usd, inclusive.",
            examples=[1.0],
        ),
    ] = None,
    max_price: Annotated[
        float | None,
        Query(
            ge=0,
            le=1e18,
            allow_inf_nan=False,
            description="Highest price_usd, inclusive.",
            examples=[100000.0],
        ),
    ] = None,
    min_market_cap: Annotated[
        float | None,
        Query(
            ge=0,
            le=1e18,
            allow_inf_nan=False,
            description="Lowest market_cap_usd, inclusive.",
            examples=[1e9],
        ),
    ] = None,
    sort: Annotated[
        SortParam,
        Query(
            description="Sort column; a leading '-' sorts descending. NULLs always come last.",
            examples=["-market_cap_usd"],
        ),
    ] = "-market_cap_usd",
) -> Response:
    """One source's latest record per canonical asset, filtered, sorted and paginated.

    Pass `next_cursor` back as `cursor` to walk every row exactly once; `page`/`offset` are kept
    for compatibility.
    """
    with read_snapshot(request, engine) as conn:
        filters: dict[str, Any] = {
            "symbol": symbol,
            "source": source,
            "asset_id": asset_id,
            "coin_id": coin_id,
            "min_price": min_price,
            "max_price": max_price,
            "min_market_cap": min_market_cap,
        }
        count_key = totals_key(request, "data", **filters)
        column = sort.lstrip("-")
        after = (
            decode_cursor(page.cursor, spec=sort, kind=SORT_KINDS[column]) if page.cursor else None
        )
        result = queries.list_records(
            conn=conn,
            **filters,
            sort=column,
            descending=sort.startswith("-"),
            after=after,
            offset=page.offset,
            limit=page.limit,
            total=totals.get(count_key),
        )
        totals.set(count_key, result.total)
        payload = DataPublic(
            data=[RecordPublic.model_validate(row) for row in result.rows],
            pagination=pagination(result, limit=page.limit, spec=sort, key=column),
            meta=META_PENDING,
        )
    return render(request, payload)
