"""Typed SQLAlchemy models. Table and column names are part of Kasparro's interface."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both dialects (SQLite stores no offset, so it is added back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Asset(Base):
    """One real-world coin, whatever the sources call it."""

    __tablename__ = "asset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    match_key: Mapped[str] = mapped_column(String(330))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    flag_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("match_key"),
        Index("ix_asset_symbol", "symbol"),
    )


class AssetSource(Base):
    """How one source names one asset: ``(source, coin_id)`` is unique."""

    __tablename__ = "asset_source"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))
    coin_id: Mapped[str] = mapped_column(String(255))
    symbol: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("source", "coin_id"),
        Index("ix_asset_source_asset_id", "asset_id"),
    )


class _RawMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    coin_id: Mapped[str] = mapped_column(String(255))
    payload: Mapped[Any] = mapped_column(Json)
    payload_hash: Mapped[str] = mapped_column(String(64))
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RawCoinPaprika(_RawMixin, Base):
    __tablename__ = "raw_coinpaprika"
    __table_args__ = (
        UniqueConstraint("coin_id", "payload_hash"),  # migration 0004 says why
        Index("idx_coinpaprika_coin_time", "coin_id", "ingested_at"),
    )


class RawCoinGecko(_RawMixin, Base):
    __tablename__ = "raw_coingecko"
    __table_args__ = (
        UniqueConstraint("coin_id", "payload_hash"),  # migration 0004 says why
        Index("idx_coingecko_coin_time", "coin_id", "ingested_at"),
    )


class RawCsv(_RawMixin, Base):
    __tablename__ = "raw_csv"
    __table_args__ = (
        UniqueConstraint("coin_id", "payload_hash"),  # migration 0004 says why
        Index("idx_csv_coin_time", "coin_id", "ingested_at"),
    )


RAW_MODELS: dict[str, type[_RawMixin]] = {
    "coinpaprika": RawCoinPaprika,
    "coingecko": RawCoinGecko,
    "csv": RawCsv,
}


class UnifiedCrypto(Base):
    """The latest normalized record per ``(asset_id, source)``."""

    __tablename__ = "unified_crypto"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))
    coin_id: Mapped[str] = mapped_column(String(255))
    symbol: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    rank: Mapped[int | None] = mapped_column(Integer)
    price_usd: Mapped[float | None] = mapped_column(Double)
    market_cap_usd: Mapped[float | None] = mapped_column(Double)
    volume_24h_usd: Mapped[float | None] = mapped_column(Double)
    circulating_supply: Mapped[float | None] = mapped_column(Double)
    total_supply: Mapped[float | None] = mapped_column(Double)
    max_supply: Mapped[float | None] = mapped_column(Double)
    percent_change_24h: Mapped[float | None] = mapped_column(Double)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    run_id: Mapped[int | None] = mapped_column(Integer)
    payload_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("asset_id", "source"),
        Index("idx_unified_coin_source", "coin_id", "source"),
        Index("idx_unified_symbol", "symbol"),
        Index("ix_unified_crypto_market_cap_usd", "market_cap_usd"),
    )


# The API's default sort (-market_cap_usd with NULLs last, then -id) as one index scan. SQLite
# cannot declare NULLS LAST in an index (its DESC puts NULLs last anyway), so migration 0002
# creates it there without the clause and create_all() emits it only on PostgreSQL.
Index(
    "ix_unified_crypto_market_cap_desc_id",
    UnifiedCrypto.market_cap_usd.desc().nulls_last(),
    UnifiedCrypto.id.desc(),
).ddl_if(dialect="postgresql")


class PriceHistory(Base):
    """Every distinct observation of an asset by a source, once."""

    __tablename__ = "price_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    price_usd: Mapped[float | None] = mapped_column(Double)
    market_cap_usd: Mapped[float | None] = mapped_column(Double)
    volume_24h_usd: Mapped[float | None] = mapped_column(Double)
    open_usd: Mapped[float | None] = mapped_column(Double)
    high_usd: Mapped[float | None] = mapped_column(Double)
    low_usd: Mapped[float | None] = mapped_column(Double)
    run_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("asset_id", "source", "observed_at"),
        Index("ix_price_history_asset_time", "asset_id", "observed_at"),
    )


class EtlCheckpoint(Base):
    """Where a source's incremental loading stands; moved only with the data it covers."""

    __tablename__ = "etl_checkpoint"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_value: Mapped[str | None] = mapped_column(Text)
    state: Mapped[Any] = mapped_column(Json, nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EtlRun(Base):
    """One run of one source."""

    __tablename__ = "etl_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[float | None] = mapped_column(Double)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    loaded: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    drift_events: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    hostname: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_etl_run_source_started", "source", "started_at"),
        Index("ix_etl_run_status", "status"),
    )


class SchemaDrift(Base):
    """One distinct change in a source's payload shape, once per run."""

    __tablename__ = "schema_drift"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    expected: Mapped[str | None] = mapped_column(String(255))
    observed: Mapped[str | None] = mapped_column(String(255))
    sample_value: Mapped[str | None] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("run_id", "field", "kind"),
        Index("ix_schema_drift_source_time", "source", "detected_at"),
    )


class Quarantine(Base):
    """A record that failed validation, kept with its reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(Integer)
    coin_id: Mapped[str | None] = mapped_column(String(255))
    record: Mapped[Any] = mapped_column(Json, nullable=True)
    errors: Mapped[Any] = mapped_column(Json, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_quarantine_source_run", "source", "run_id"),)


class CircuitBreaker(Base):
    """Per-source breaker state, kept in the database so it survives restarts."""

    __tablename__ = "circuit_breaker"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="closed")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DataVersion(Base):
    """A counter bumped in every transaction that changes served data; keys the API cache."""

    __tablename__ = "data_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
