"""``/assets``: canonical assets, one asset across sources, and its price history as OHLC buckets."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from kasparro.api.deps import EngineDep, PageDep
from kasparro.api.errors import ERROR_RESPONSES, ApiError
from kasparro.api.pagination import decode_cursor, pagination
from kasparro.api.responses import render
from kasparro.api.routes.params import MAX_ID, SourceFilter, SymbolFilter
from kasparro.db import queries
from kasparro.schemas.api import (
    META_PENDING,
    AssetDetailPublic,
    AssetPublic,
    AssetsPublic,
    ErrorPublic,
    HistoryBucket,
    HistoryPublic,
    RecordPublic,
)

router = APIRouter(tags=["assets"], responses=ERROR_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such asset."}
}
AssetId = Annotated[int, Path(ge=1, le=MAX_ID, description="Canonical asset id.", examples=[1])]
INTERVAL_SECONDS = {"1h": 3600, "1d": 86400}
DEFAULT_SPAN = {"1h": timedelta(days=7), "1d": timedelta(days=90)}
MAX_BUCKETS = 5000


def _load_asset(conn: Any, asset_id: int) -> AssetPublic:
    row = queries.get_asset(conn=conn, asset_id=asset_id)
    if row is None:
        raise ApiError(404, "not_found", f"asset {asset_id} does not exist")
    sources = queries.asset_sources(conn=conn, asset_ids=[asset_id])[asset_id]
    return AssetPublic.model_validate({**row, "sources": sources})


@router.get("/assets", response_model=AssetsPublic, summary="Canonical assets")
def list_assets(
    request: Request, engine: EngineDep, page: PageDep, symbol: SymbolFilter = None
) -> Response:
    """Canonical assets by id, with the sources that report each."""
    with engine.connect() as conn:
        after = decode_cursor(page.cursor, spec="id", kind="int")[1] if page.cursor else None
        result = queries.list_assets(
            conn=conn, symbol=symbol, after_id=after, offset=page.offset, limit=page.limit
        )
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


@router.get(
    "/assets/{asset_id}",
    response_model=AssetDetailPublic,
    responses=_NOT_FOUND,
    summary="One asset across sources",
)
def get_asset(request: Request, engine: EngineDep, asset_id: AssetId) -> Response:
    """Each source's latest record, the consensus (median) price and the spread between sources."""
    with engine.connect() as conn:
        asset = _load_asset(conn, asset_id)
        records = [
            RecordPublic.model_validate(r)
            for r in queries.asset_records(conn=conn, asset_id=asset_id)
        ]
        prices = [
            r.price_usd for r in records if r.price_usd is not None and math.isfinite(r.price_usd)
        ]
        consensus = statistics.median(prices) if prices else None
        spread = None
        if consensus and len(prices) > 1:
            spread = round((max(prices) - min(prices)) / consensus * 100, 6)
        payload = AssetDetailPublic(
            asset=asset,
            records=records,
            consensus_price_usd=consensus,
            spread_pct=spread,
            meta=META_PENDING,
        )
    return render(request, payload)


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ApiError(422, "validation_error", "timestamp out of range") from None


def _range(
    start: datetime | None, end: datetime | None, interval: str
) -> tuple[datetime, datetime]:
    try:
        stop = _utc(end) if end else datetime.now(UTC)
        begin = _utc(start) if start else stop - DEFAULT_SPAN[interval]
    except OverflowError:
        raise ApiError(422, "validation_error", "timestamp out of range") from None
    if begin >= stop:
        raise ApiError(422, "validation_error", "'from' must be before 'to'")
    if (stop - begin).total_seconds() / INTERVAL_SECONDS[interval] > MAX_BUCKETS:
        raise ApiError(
            422, "validation_error", f"range too long: at most {MAX_BUCKETS} buckets of {interval}"
        )
    return begin, stop


def _buckets(rows: list[queries.Row], step: int) -> list[HistoryBucket]:
    grouped: dict[int, list[queries.Row]] = {}
    for row in rows:
        epoch = int(_utc(row["observed_at"]).timestamp())
        grouped.setdefault(epoch - epoch % step, []).append(row)
    out = []
    for start, members in sorted(grouped.items()):
        prices = [m["price_usd"] for m in members if m["price_usd"] is not None]
        highs = prices + [m["high_usd"] for m in members if m["high_usd"] is not None]
        lows = prices + [m["low_usd"] for m in members if m["low_usd"] is not None]
        volumes = [m["volume_24h_usd"] for m in members if m["volume_24h_usd"] is not None]
        out.append(
            HistoryBucket(
                start=datetime.fromtimestamp(start, UTC),
                open=prices[0] if prices else None,
                high=max(highs) if highs else None,
                low=min(lows) if lows else None,
                close=prices[-1] if prices else None,
                volume_24h_usd=volumes[-1] if volumes else None,
                observations=len(members),
            )
        )
    return out


@router.get(
    "/assets/{asset_id}/history",
    response_model=HistoryPublic,
    responses=_NOT_FOUND,
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
            description="Range start, inclusive (ISO 8601; UTC if no offset). Default: 7 days (1h) or 90 days (1d) before `to`.",
            examples=["2024-01-01T00:00:00Z"],
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(
            alias="to",
            description="Range end, exclusive (ISO 8601). Default: now.",
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
    with engine.connect() as conn:
        begin, stop = _range(start, end, interval)
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
            buckets=_buckets(rows, INTERVAL_SECONDS[interval]),
            meta=META_PENDING,
        )
    return render(request, payload)
