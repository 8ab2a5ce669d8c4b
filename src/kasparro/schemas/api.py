"""Response and request models of the read API, named by role (``RecordPublic``, ``RunsPublic``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SourceName = Literal["coinpaprika", "coingecko", "csv"]
RunStatus = Literal["running", "success", "partial", "failed", "interrupted", "skipped"]
HealthStatus = Literal["ok", "degraded", "down"]

_TS = "2024-01-15T10:30:00Z"


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Meta(_Public):
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


class Pagination(_Public):
    limit: int = Field(description="Page size that was applied.", examples=[50])
    next_cursor: str | None = Field(
        description="Opaque cursor for the next page; null on the last page.",
        examples=["WyItbWFya2V0X2NhcF91c2QiLDEuMGUxMiwxXQ"],
    )
    has_more: bool = Field(description="Whether another page follows.", examples=[True])
    total: int = Field(description="Rows matching the filters, over all pages.", examples=[150])


class RecordPublic(_Public):
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
        description="When the source last updated the figures (UTC).", examples=[_TS]
    )
    ingested_at: datetime = Field(
        description="When Kasparro stored the record (UTC).", examples=[_TS]
    )
    run_id: int | None = Field(description="ETL run that last changed the record.", examples=[7])


class DataPublic(_Public):
    data: list[RecordPublic] = Field(description="One page of unified records.")
    pagination: Pagination
    meta: Meta


class RunPublic(_Public):
    """One ETL run of one source."""

    id: int = Field(description="Run id.", examples=[7])
    source: str = Field(description="Source the run ingested.", examples=["coinpaprika"])
    status: str = Field(
        description="running, success, partial, failed, interrupted or skipped.",
        examples=["success"],
    )
    trigger: str = Field(
        description="What started the run (schedule, manual, api …).", examples=["schedule"]
    )
    started_at: datetime = Field(description="Start time (UTC).", examples=[_TS])
    finished_at: datetime | None = Field(
        description="End time (UTC); null while running.", examples=[_TS]
    )
    duration_seconds: float | None = Field(description="Wall time of the run.", examples=[3.2])
    fetched: int = Field(description="Records fetched from the source.", examples=[50])
    loaded: int = Field(description="Records written to the unified table.", examples=[48])
    unchanged: int = Field(description="Records skipped because nothing changed.", examples=[2])
    quarantined: int = Field(description="Records that failed validation.", examples=[0])
    drift_events: int = Field(description="Schema drift events detected.", examples=[0])
    requests: int = Field(description="HTTP requests made.", examples=[1])
    retries: int = Field(description="HTTP retries made.", examples=[0])
    error: str | None = Field(description="Error message of a failed run.", examples=[None])


class RunsPublic(_Public):
    data: list[RunPublic] = Field(description="Runs, newest first.")
    pagination: Pagination
    meta: Meta


class DriftPublic(_Public):
    """One change in a source's payload shape."""

    id: int = Field(description="Drift event id.", examples=[3])
    source: str = Field(description="Source whose payload changed.", examples=["coingecko"])
    run_id: int = Field(description="Run that detected it.", examples=[7])
    field: str = Field(description="Dotted path of the field.", examples=["market_data.price"])
    kind: str = Field(description="missing, new or type_changed.", examples=["new"])
    expected: str | None = Field(description="Expected type, if any.", examples=["number"])
    observed: str | None = Field(description="Observed type, if any.", examples=["string"])
    sample_value: str | None = Field(description="A sample of the new value.", examples=["123.4"])
    detected_at: datetime = Field(description="Detection time (UTC).", examples=[_TS])


class DriftListPublic(_Public):
    data: list[DriftPublic] = Field(description="Drift events, newest first.")
    pagination: Pagination
    meta: Meta


class RunDetailPublic(_Public):
    run: RunPublic
    drift: list[DriftPublic] = Field(description="Drift events detected by this run.")
    quarantine_count: int = Field(
        description="Records of this run held in quarantine.", examples=[0]
    )
    meta: Meta


class CountDiff(_Public):
    a: int = Field(description="Value in run a.", examples=[50])
    b: int = Field(description="Value in run b.", examples=[52])
    delta: int = Field(description="b minus a.", examples=[2])


class AssetRef(_Public):
    asset_id: int = Field(description="Canonical asset id.", examples=[1])
    symbol: str = Field(description="Ticker symbol.", examples=["BTC"])
    price_usd: float | None = Field(description="Price observed in the run.", examples=[43250.5])


class PriceMove(_Public):
    asset_id: int = Field(description="Canonical asset id.", examples=[1])
    symbol: str = Field(description="Ticker symbol.", examples=["BTC"])
    price_a: float = Field(description="Price observed in run a.", examples=[43000.0])
    price_b: float = Field(description="Price observed in run b.", examples=[44000.0])
    change_pct: float = Field(description="Change from a to b in percent.", examples=[2.33])


class RunComparePublic(_Public):
    a: RunPublic
    b: RunPublic
    counts: dict[str, CountDiff] = Field(
        description="Run counters side by side (fetched, loaded, …, observed assets)."
    )
    threshold_pct: float = Field(
        description="Minimum absolute price change reported, in percent.", examples=[1.0]
    )
    assets_added: list[AssetRef] = Field(description="Assets observed in b but not in a.")
    assets_removed: list[AssetRef] = Field(description="Assets observed in a but not in b.")
    price_moved: list[PriceMove] = Field(
        description="Assets whose price moved more than the threshold."
    )
    meta: Meta


class BreakerPublic(_Public):
    state: str = Field(description="closed, open or half_open.", examples=["closed"])
    consecutive_failures: int = Field(description="Failures since the last success.", examples=[0])
    opened_at: datetime | None = Field(
        description="When the breaker opened (UTC).", examples=[None]
    )


class SourceStats(_Public):
    source: str = Field(description="Source name.", examples=["coingecko"])
    unified_rows: int = Field(description="Rows in the unified table.", examples=[50])
    raw_rows: int = Field(description="Rows in the source's raw table.", examples=[120])
    assets_covered: int = Field(
        description="Distinct canonical assets the source reports.", examples=[50]
    )
    runs: int = Field(description="Runs recorded for the source.", examples=[12])
    last_run: RunPublic | None = Field(description="The latest run, if any.")
    success_rate: float | None = Field(
        description="Share of successful runs over the window (0-1).", examples=[0.95]
    )
    drift_events: int = Field(description="Schema drift events recorded.", examples=[1])
    quarantined: int = Field(description="Records in quarantine.", examples=[0])
    circuit_breaker: BreakerPublic


class StatsTotals(_Public):
    unified_rows: int = Field(examples=[150], description="Sum over sources.")
    raw_rows: int = Field(examples=[400], description="Sum over sources.")
    assets: int = Field(examples=[60], description="Canonical assets.")
    runs: int = Field(examples=[36], description="Runs over all sources.")
    drift_events: int = Field(examples=[1], description="Sum over sources.")
    quarantined: int = Field(examples=[0], description="Sum over sources.")


class StatsPublic(_Public):
    window: int = Field(description="Runs per source considered for success_rate.", examples=[20])
    sources: list[SourceStats]
    totals: StatsTotals
    meta: Meta


class AssetPublic(_Public):
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


class AssetsPublic(_Public):
    data: list[AssetPublic]
    pagination: Pagination
    meta: Meta


class AssetDetailPublic(_Public):
    asset: AssetPublic
    records: list[RecordPublic] = Field(description="Each source's latest record.")
    consensus_price_usd: float | None = Field(
        description="Median price across sources.", examples=[43250.5]
    )
    spread_pct: float | None = Field(
        description="(max - min) / median * 100 across sources.", examples=[0.35]
    )
    meta: Meta


class HistoryBucket(_Public):
    start: datetime = Field(description="Bucket start (UTC).", examples=[_TS])
    open: float | None = Field(description="First price in the bucket.", examples=[43000.0])
    high: float | None = Field(description="Highest price in the bucket.", examples=[43500.0])
    low: float | None = Field(description="Lowest price in the bucket.", examples=[42900.0])
    close: float | None = Field(description="Last price in the bucket.", examples=[43250.5])
    volume_24h_usd: float | None = Field(
        description="Last 24 h volume observed in the bucket.", examples=[2.1e10]
    )
    observations: int = Field(description="Price observations in the bucket.", examples=[3])


class HistoryPublic(_Public):
    asset_id: int = Field(description="Canonical asset id.", examples=[1])
    interval: str = Field(description="Bucket width.", examples=["1h"])
    source: str | None = Field(
        description="Source filter, or null for all sources.", examples=[None]
    )
    start: datetime = Field(description="Range start (UTC, inclusive).", examples=[_TS])
    end: datetime = Field(description="Range end (UTC, exclusive).", examples=[_TS])
    buckets: list[HistoryBucket]
    meta: Meta


class DatabaseHealth(_Public):
    reachable: bool = Field(description="Whether SELECT 1 succeeded.", examples=[True])
    latency_ms: float | None = Field(description="Round trip of SELECT 1.", examples=[0.8])


class SourceHealth(_Public):
    source: str = Field(examples=["coingecko"], description="Source name.")
    last_run_status: str | None = Field(
        examples=["success"], description="Status of the latest run."
    )
    last_run_at: datetime | None = Field(examples=[_TS], description="Start of the latest run.")
    last_run_age_seconds: float | None = Field(
        examples=[120.0], description="Seconds since the latest run started."
    )
    last_success_at: datetime | None = Field(
        examples=[_TS], description="End of the latest successful run."
    )
    last_success_age_seconds: float | None = Field(
        examples=[125.0], description="Seconds since then."
    )
    stale: bool = Field(
        examples=[False], description="Whether the last success is older than the staleness limit."
    )
    consecutive_failures: int = Field(
        examples=[0], description="Failed runs in a row, newest first."
    )
    circuit_breaker: str = Field(examples=["closed"], description="Breaker state.")


class HealthPublic(_Public):
    status: HealthStatus = Field(
        description="ok, degraded (see reasons) or down (database unreachable).", examples=["ok"]
    )
    reasons: list[str] = Field(description="Why the status is not ok.", examples=[[]])
    database: DatabaseHealth
    sources: list[SourceHealth]
    stale_after_seconds: float = Field(description="Staleness limit applied.", examples=[43200.0])
    checked_at: datetime = Field(description="When the check ran (UTC).", examples=[_TS])
    request_id: str = Field(description="The request id.", examples=["3f2b9c1e4d5a4b7c"])


class LivePublic(_Public):
    status: Literal["alive"] = Field(
        description="Always alive when the process answers.", examples=["alive"]
    )


class RootPublic(_Public):
    name: str = Field(examples=["kasparro"], description="Service name.")
    version: str = Field(examples=["0.1.0"], description="Package version.")
    sources: list[str] = Field(
        examples=[["coinpaprika", "coingecko", "csv"]], description="Enabled sources."
    )
    links: dict[str, str] = Field(examples=[{"docs": "/docs"}], description="Where to go next.")


class RunTriggerRequest(BaseModel):
    sources: list[SourceName] | None = Field(
        None,
        description="Sources to run; all enabled sources when omitted.",
        examples=[["coingecko"]],
        max_length=3,
    )


class RunTriggerPublic(_Public):
    status: Literal["accepted"] = Field(
        description="The pass was started in the background.", examples=["accepted"]
    )
    trigger: str = Field(description="Trigger recorded on the runs.", examples=["api"])
    sources: list[str] = Field(description="Sources that will run.", examples=[["coingecko"]])
    requested_at: datetime = Field(
        description="When the request was accepted (UTC).", examples=[_TS]
    )
    request_id: str = Field(description="The request id.", examples=["3f2b9c1e4d5a4b7c"])


class ErrorDetail(_Public):
    code: str = Field(description="Machine-readable error code.", examples=["validation_error"])
    message: str = Field(description="Human-readable explanation.", examples=["invalid cursor"])
    details: Any = Field(
        None, description="Extra structured context, e.g. the failing parameters.", examples=[None]
    )


class ErrorPublic(_Public):
    error: ErrorDetail
    request_id: str | None = Field(description="The request id.", examples=["3f2b9c1e4d5a4b7c"])
