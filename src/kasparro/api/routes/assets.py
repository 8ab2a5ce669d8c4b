"""``/assets``: canonical assets, one asset across sources, and its price history as OHLC buckets."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from kasparro.api.deps import EngineDep, PageDep, SettingsDep, TotalsDep
from kasparro.api.errors import ERROR_RESPONSES, ApiError
from kasparro.api.history import INTERVAL_SECONDS, aligned_window, buckets, utc
from kasparro.api.links import ASSET_LINKS, ASSETS_LINKS, HISTORY_LINKS, with_links
from kasparro.api.pagination import decode_cursor, pagination
from kasparro.api.responses import read_snapshot, render, totals_key
from kasparro.api.routes.health import stale_after_seconds
from kasparro.api.routes.params import MAX_ID, SourceFilter, SymbolFilter
from kasparro.config import Settings
from kasparro.db import queries
from kasparro.schemas.api import (
    META_PENDING,
    AssetDetailPublic,
    AssetPublic,
    AssetsPublic,
    ErrorPublic,
    HistoryPublic,
    RecordPublic,
)

router = APIRouter(tags=["assets"], responses=ERROR_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such asset."}
}
AssetId = Annotated[int, Path(ge=1, le=MAX_ID, description="Canonical asset id.", examples=[1])]


def _load_asset(conn: Any, asset_id: int) -> AssetPublic:
    row = queries.get_asset(conn=conn, asset_id=asset_id)
    if row is None:
        raise ApiError(404, "not_found", f"asset {asset_id} does not exist")
    sources = queries.asset_sources(conn=conn, asset_ids=[asset_id])[asset_id]
    return AssetPublic.model_validate({**row, "sources": sources})


@router.get(
    "/assets",
    response_model=AssetsPublic,
    responses=with_links(200, ASSETS_LINKS),
    summary="Canonical assets",
)
def list_assets(
    request: Request,
    engine: EngineDep,
    totals: TotalsDep,
    page: PageDep,
    symbol: SymbolFilter = None,
    source: Annotated[
        Literal["coinpaprika", "coingecko", "csv"] | None,
        Query(
            description="Only assets this source has reported (listed in `sources`).",
            examples=["coingecko"],
        ),
    ] = None,
    flagged: Annotated[
        bool | None,
        Query(
            description="Only assets whose identity match was (true) or was not (false) ambiguous.",
            examples=[True],
        ),
    ] = None,
) -> Response:
    """Canonical assets by id, with the sources that report each."""
    with read_snapshot(request, engine) as conn:
        count_key = totals_key(request, "assets", symbol=symbol, source=source, flagged=flagged)
        after = decode_cursor(page.cursor, spec="id", kind="int")[1] if page.cursor else None
        result = queries.list_assets(
            conn=conn,
            symbol=symbol,
            source=source,
            flagged=flagged,
            after_id=after,
            offset=page.offset,
            limit=page.limit,
            total=totals.get(count_key),
        )
        totals.set(count_key, result.total)
        sources = queries.asset_sources(conn=conn, asset_ids=[int(r["id"]) for r in result.rows])
        payload = AssetsPublic(
            data=[
                AssetPublic.model_validate({**row, "sources": sources[int(row["id"])]})
                for row in result.rows
            ],
            pagination=pagination(result, limit=page.limit, spec="id", key="id"),
            meta=META_PENDING,
        )
    return render(request, payload)


def _consensus_inputs(
    records: list[RecordPublic], settings: Settings, now: datetime
) -> list[RecordPublic]:
    """Records that may enter the consensus: from an enabled source, priced, and not stale.

    A record's age is that of its newest timestamp (the source's update or Kasparro's write).
    """
    oldest = now - timedelta(seconds=stale_after_seconds(settings))
    usable = []
    for record in records:
        if record.source not in settings.sources:
            continue
        if record.price_usd is None or not math.isfinite(record.price_usd):
            continue
        stamps = [utc(record.ingested_at)]
        if record.source_updated_at is not None:
            stamps.append(utc(record.source_updated_at))
        if max(stamps) >= oldest:
            usable.append(record)
    return usable


@router.get(
    "/assets/{asset_id}",
    response_model=AssetDetailPublic,
    responses={**_NOT_FOUND, **with_links(200, ASSET_LINKS)},
    summary="One asset across sources",
)
def get_asset(
    request: Request, engine: EngineDep, settings: SettingsDep, asset_id: AssetId
) -> Response:
    """Each source's latest record, and the consensus (median) price and spread between sources.

    Only records of enabled sources updated within the staleness limit enter the consensus;
    `consensus_sources` names them.
    """
    with read_snapshot(request, engine) as conn:
        asset = _load_asset(conn, asset_id)
        records = [
            RecordPublic.model_validate(r)
            for r in queries.asset_records(conn=conn, asset_id=asset_id)
        ]
    usable = _consensus_inputs(records, settings, datetime.now(UTC))
    prices = [r.price_usd for r in usable if r.price_usd is not None]
    consensus = statistics.median(prices) if prices else None
    spread = None
    if consensus and len(prices) > 1:
        spread = round((max(prices) - min(prices)) / consensus * 100, 6)
    payload = AssetDetailPublic(
        asset=asset,
        records=records,
        consensus_price_usd=consensus,
        spread_pct=spread,
        consensus_sources=sorted({r.source for r in usable}),
        meta=META_PENDING,
    )
    return render(request, payload)


@router.get(
    "/assets/{asset_id}/history",
    response_model=HistoryPublic,
    responses={**_NOT_FOUND, **with_links(200, HISTORY_LINKS)},
    summary="Price history",
)
def get_history(
    request: Request,
    engine: EngineDep,
    asset_id: AssetId,
    start: Annotated[
        datetime | None,
        Query(
            alias="from",
            description="Range start, inclusive, rounded down to the interval (ISO 8601; UTC if "
            "no offset). Default: 7 days (1h) or 90 days (1d) before `to`.",
            examples=["2024-01-01T00:00:00Z"],
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(
            alias="to",
            description="Range end, exclusive, rounded up to the interval (ISO 8601). "
            "Default: the end of the current bucket.",
            examples=["2024-01-08T00:00:00Z"],
        ),
    ] = None,
    interval: Annotated[
        Literal["1h", "1d"], Query(description="Bucket width.", examples=["1h"])
    ] = "1h",
    source: SourceFilter = None,
) -> Response:
    """Open, high, low, close and the last 24 h volume per time bucket, from every stored observation.

    Without `source`, observations of all sources are merged into the same buckets.
    """
    begin, stop = aligned_window(start, end, interval)
    with read_snapshot(request, engine) as conn:
        _load_asset(conn, asset_id)
        rows = queries.price_observations(
            conn=conn, asset_id=asset_id, start=begin, end=stop, source=source
        )
    payload = HistoryPublic(
        asset_id=asset_id,
        interval=interval,
        source=source,
        start=begin,
        end=stop,
        buckets=buckets(rows, INTERVAL_SECONDS[interval]),
        meta=META_PENDING,
    )
    return render(request, payload)
