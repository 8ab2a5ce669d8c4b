"""Response and request models of the read API, named by role (``RecordPublic``, ``RunsPublic``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SourceName = Literal["coinpaprika", "coingecko", "csv"]
RunStatus = Literal["running", "success", "partial", "failed", "interrupted", "skipped"]
HealthStatus = Literal["ok", "degraded", "down"]

TS_EXAMPLE = "2024-01-15T10:30:00Z"


class PublicModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Meta(PublicModel):
    """Per-request facts, filled in on every response even when the body came from the cache."""

    request_id: str = Field(
        description="The request id (echoed from X-Request-ID or generated).",
        examples=["3f2b9c1e4d5a4b7c"],
    )
    api_latency_ms: float = Field(
        description="Time the API spent on this request, in milliseconds.", examples=[1.42]
    )
    data_version: int = Field(
        description="Counter bumped by every committed ETL batch; keys the cache.", examples=[42]
    )


META_PENDING = Meta(request_id="", api_latency_ms=0.0, data_version=0)


class Pagination(PublicModel):
    """Where this page sits: its size, the cursor to the next page, the total."""

    limit: int = Field(description="Page size that was applied.", examples=[50])
    next_cursor: str | None = Field(
        description="Opaque cursor for the next page; null on the last page.",
        examples=["WyItbWFya2V0X2NhcF91c2QiLDEuMGUxMiwxXQ"],
    )
    has_more: bool = Field(description="Whether another page follows.", examples=[True])
    total: int = Field(description="Rows matching the filters, over all pages.", examples=[150])


class RecordPublic(PublicModel):
    """One source's latest normalized record of one canonical asset."""

    id: int = Field(description="Row id of the unified record.", examples=[1])
    asset_id: int = Field(description="Canonical asset id shared across sources.", examples=[1])
    source: str = Field(description="Source that reported the record.", examples=["coingecko"])
    coin_id: str = Field(description="The source's own id for the coin.", examples=["bitcoin"])
    symbol: str = Field(description="Ticker symbol as the source spells it.", examples=["BTC"])
    name: str = Field(description="Coin name.", examples=["Bitcoin"])
    rank: int | None = Field(description="Market-cap rank reported by the source.", examples=[1])
    price_usd: float | None = Field(description="Price in US dollars.", examples=[43250.5])
    market_cap_usd: float | None = Field(
        description="Market capitalisation in US dollars.", examples=[8.47e11]
    )
    volume_24h_usd: float | None = Field(
        description="Traded volume over 24 hours in US dollars.", examples=[2.1e10]
    )
    circulating_supply: float | None = Field(
        description="Coins in circulation.", examples=[19_600_000]
    )
    total_supply: float | None = Field(description="Coins in existence.", examples=[19_600_000])
    max_supply: float | None = Field(
        description="Hard cap on supply, if any.", examples=[21_000_000]
    )
    percent_change_24h: float | None = Field(
        description="Price change over 24 hours in percent.", examples=[-1.25]
    )
    source_updated_at: datetime | None = Field(
        description="When the source last updated the figures (UTC).", examples=[TS_EXAMPLE]
    )
    ingested_at: datetime = Field(
        description="When Kasparro stored the record (UTC).", examples=[TS_EXAMPLE]
    )
    run_id: int | None = Field(description="ETL run that last changed the record.", examples=[7])


class DataPublic(PublicModel):
    """A page of unified records."""

    data: list[RecordPublic] = Field(description="One page of unified records.")
    pagination: Pagination
    meta: Meta


class AssetPublic(PublicModel):
    """One canonical asset and the sources that report it."""

    id: int = Field(description="Canonical asset id.", examples=[1])
    symbol: str = Field(description="Ticker symbol.", examples=["BTC"])
    name: str = Field(description="Name.", examples=["Bitcoin"])
    flagged: bool = Field(
        description="True when identity matching was ambiguous.", examples=[False]
    )
    flag_reason: str | None = Field(description="Why the asset was flagged.", examples=[None])
    sources: list[str] = Field(
        description="Sources that know this asset.", examples=[["coingecko", "coinpaprika"]]
    )


class AssetsPublic(PublicModel):
    """A page of canonical assets."""

    data: list[AssetPublic]
    pagination: Pagination
    meta: Meta


class AssetDetailPublic(PublicModel):
    """One asset across sources, with a consensus price over the fresh records of enabled sources."""

    asset: AssetPublic
    records: list[RecordPublic] = Field(description="Each source's latest record.")
    consensus_price_usd: float | None = Field(
        description="Median price across the contributing sources.", examples=[43250.5]
    )
    spread_pct: float | None = Field(
        description="(max - min) / median * 100 across the contributing sources.", examples=[0.35]
    )
    consensus_sources: list[str] = Field(
        description="Sources whose price entered the consensus: enabled in settings and "
        "updated within the staleness limit.",
        examples=[["coingecko", "coinpaprika"]],
    )
    meta: Meta


class HistoryBucket(PublicModel):
    """Open, high, low and close of one time bucket."""

    start: datetime = Field(description="Bucket start (UTC).", examples=[TS_EXAMPLE])
    open: float | None = Field(description="First price in the bucket.", examples=[43000.0])
    high: float | None = Field(description="Highest price in the bucket.", examples=[43500.0])
    low: float | None = Field(description="Lowest price in the bucket.", examples=[42900.0])
    close: float | None = Field(description="Last price in the bucket.", examples=[43250.5])
    volume_24h_usd: float | None = Field(
        description="Last 24 h volume observed in the bucket.", examples=[2.1e10]
    )
    observations: int = Field(description="Price observations in the bucket.", examples=[3])


class HistoryPublic(PublicModel):
    """An asset's price history as time buckets aligned to the interval."""

    asset_id: int = Field(description="Canonical asset id.", examples=[1])
    interval: str = Field(description="Bucket width.", examples=["1h"])
    source: str | None = Field(
        description="Source filter, or null for all sources.", examples=[None]
    )
    start: datetime = Field(description="Range start (UTC, inclusive).", examples=[TS_EXAMPLE])
    end: datetime = Field(description="Range end (UTC, exclusive).", examples=[TS_EXAMPLE])
    buckets: list[HistoryBucket]
    meta: Meta


class LivePublic(PublicModel):
    """The liveness probe's answer."""

    status: Literal["alive"] = Field(
        description="Always alive when the process answers.", examples=["alive"]
    )


class RootPublic(PublicModel):
    """What this service is and where to go next."""

    name: str = Field(examples=["kasparro"], description="Service name.")
    version: str = Field(examples=["0.1.0"], description="Package version.")
    sources: list[str] = Field(
        examples=[["coinpaprika", "coingecko", "csv"]], description="Enabled sources."
    )
    links: dict[str, str] = Field(examples=[{"docs": "/docs"}], description="Where to go next.")


class ErrorDetail(PublicModel):
    """What went wrong."""

    code: str = Field(description="Machine-readable error code.", examples=["validation_error"])
    message: str = Field(description="Human-readable explanation.", examples=["invalid cursor"])
    details: Any = Field(
        None, description="Extra structured context, e.g. the failing parameters.", examples=[None]
    )


class ErrorPublic(PublicModel):
    """The one error body shape of the API."""

    error: ErrorDetail
    request_id: str | None = Field(description="The request id.", examples=["3f2b9c1e4d5a4b7c"])
