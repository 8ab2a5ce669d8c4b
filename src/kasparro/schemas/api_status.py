"""Response models of the read API's ETL-status endpoints: runs, drift, stats, health, triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kasparro.schemas.api import TS_EXAMPLE, HealthStatus, Meta, Pagination, PublicModel, SourceName


class RunPublic(PublicModel):
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
    started_at: datetime = Field(description="Start time (UTC).", examples=[TS_EXAMPLE])
    finished_at: datetime | None = Field(
        description="End time (UTC); null while running.", examples=[TS_EXAMPLE]
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


class RunsPublic(PublicModel):
    """A page of ETL runs."""

    data: list[RunPublic] = Field(description="Runs, newest first.")
    pagination: Pagination
    meta: Meta


class DriftPublic(PublicModel):
    """One change in a source's payload shape."""

    id: int = Field(description="Drift event id.", examples=[3])
    source: str = Field(description="Source whose payload changed.", examples=["coingecko"])
    run_id: int = Field(description="Run that detected it.", examples=[7])
    field: str = Field(description="Dotted path of the field.", examples=["market_data.price"])
    kind: str = Field(description="missing, new or type_changed.", examples=["new"])
    expected: str | None = Field(description="Expected type, if any.", examples=["number"])
    observed: str | None = Field(description="Observed type, if any.", examples=["string"])
    sample_value: str | None = Field(description="A sample of the new value.", examples=["123.4"])
    detected_at: datetime = Field(description="Detection time (UTC).", examples=[TS_EXAMPLE])


class DriftListPublic(PublicModel):
    """A page of schema drift events."""

    data: list[DriftPublic] = Field(description="Drift events, newest first.")
    pagination: Pagination
    meta: Meta


class RunDetailPublic(PublicModel):
    """One run with its drift events and quarantine count."""

    run: RunPublic
    drift: list[DriftPublic] = Field(description="Drift events detected by this run.")
    quarantine_count: int = Field(
        description="Records of this run held in quarantine.", examples=[0]
    )
    meta: Meta


class CountDiff(PublicModel):
    """One counter in two runs."""

    a: int = Field(description="Value in run a.", examples=[50])
    b: int = Field(description="Value in run b.", examples=[52])
    delta: int = Field(description="b minus a.", examples=[2])


class AssetRef(PublicModel):
    """An asset as one run observed it."""

    asset_id: int = Field(description="Canonical asset id.", examples=[1])
    symbol: str = Field(description="Ticker symbol.", examples=["BTC"])
    price_usd: float | None = Field(description="Price observed in the run.", examples=[43250.5])


class PriceMove(PublicModel):
    """An asset whose price moved between two runs."""

    asset_id: int = Field(description="Canonical asset id.", examples=[1])
    symbol: str = Field(description="Ticker symbol.", examples=["BTC"])
    price_a: float = Field(description="Price observed in run a.", examples=[43000.0])
    price_b: float = Field(description="Price observed in run b.", examples=[44000.0])
    change_pct: float = Field(description="Change from a to b in percent.", examples=[2.33])


class RunComparePublic(PublicModel):
    """What changed between two runs of one source."""

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


class BreakerPublic(PublicModel):
    """A source's circuit breaker."""

    state: str = Field(description="closed, open or half_open.", examples=["closed"])
    consecutive_failures: int = Field(description="Failures since the last success.", examples=[0])
    opened_at: datetime | None = Field(
        description="When the breaker opened (UTC).", examples=[None]
    )


class SourceStats(PublicModel):
    """Statistics of one source."""

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


class StatsTotals(PublicModel):
    """Totals over all sources."""

    unified_rows: int = Field(examples=[150], description="Sum over sources.")
    raw_rows: int = Field(examples=[400], description="Sum over sources.")
    assets: int = Field(examples=[60], description="Canonical assets.")
    runs: int = Field(examples=[36], description="Runs over all sources.")
    drift_events: int = Field(examples=[1], description="Sum over sources.")
    quarantined: int = Field(examples=[0], description="Sum over sources.")


class StatsPublic(PublicModel):
    """ETL statistics per source and overall."""

    window: int = Field(description="Runs per source considered for success_rate.", examples=[20])
    sources: list[SourceStats]
    totals: StatsTotals
    meta: Meta


class DatabaseHealth(PublicModel):
    """Whether the database answers, and how fast."""

    reachable: bool = Field(description="Whether SELECT 1 succeeded.", examples=[True])
    latency_ms: float | None = Field(description="Round trip of SELECT 1.", examples=[0.8])


class SourceHealth(PublicModel):
    """Freshness and failures of one source."""

    source: str = Field(examples=["coingecko"], description="Source name.")
    last_run_status: str | None = Field(
        examples=["success"], description="Status of the latest run."
    )
    last_run_at: datetime | None = Field(
        examples=[TS_EXAMPLE], description="Start of the latest run."
    )
    last_run_age_seconds: float | None = Field(
        examples=[120.0], description="Seconds since the latest run started."
    )
    last_success_at: datetime | None = Field(
        examples=[TS_EXAMPLE], description="End of the latest successful run."
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


class HealthPublic(PublicModel):
    """The service's health."""

    status: HealthStatus = Field(
        description="ok, degraded (see reasons) or down (database unreachable).", examples=["ok"]
    )
    reasons: list[str] = Field(description="Why the status is not ok.", examples=[[]])
    database: DatabaseHealth
    sources: list[SourceHealth]
    stale_after_seconds: float = Field(description="Staleness limit applied.", examples=[43200.0])
    checked_at: datetime = Field(description="When the check ran (UTC).", examples=[TS_EXAMPLE])
    request_id: str = Field(description="The request id.", examples=["3f2b9c1e4d5a4b7c"])


class RunTriggerRequest(BaseModel):
    """Which sources a triggered pass runs. Unknown keys are rejected: a misspelt ``sources``
    must not start a pass of every source."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceName] | None = Field(
        None,
        description="Sources to run; all enabled sources when omitted.",
        examples=[["coingecko"]],
        max_length=3,
    )


class RunTriggerPublic(PublicModel):
    """A pass accepted for background execution."""

    status: Literal["accepted"] = Field(
        description="The pass was started in the background.", examples=["accepted"]
    )
    trigger: str = Field(description="Trigger recorded on the runs.", examples=["api"])
    sources: list[str] = Field(description="Sources that will run.", examples=[["coingecko"]])
    requested_at: datetime = Field(
        description="When the request was accepted (UTC).", examples=[TS_EXAMPLE]
    )
    request_id: str = Field(description="The request id.", examples=["3f2b9c1e4d5a4b7c"])
