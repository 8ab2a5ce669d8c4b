"""Initial schema: raw, asset, unified, history, run tracking, drift, quarantine, breaker.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 03:32:43.034023
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("match_key", sa.String(length=330), nullable=False),
        sa.Column("flagged", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("flag_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset")),
        sa.UniqueConstraint("match_key", name=op.f("uq_asset_match_key")),
    )
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.create_index("ix_asset_symbol", ["symbol"], unique=False)

    op.create_table(
        "circuit_breaker",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_circuit_breaker")),
    )
    op.create_table(
        "data_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_version")),
    )
    op.create_table(
        "etl_checkpoint",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("last_value", sa.Text(), nullable=True),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_etl_checkpoint")),
    )
    op.create_table(
        "etl_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("loaded", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("drift_events", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_etl_run")),
    )
    with op.batch_alter_table("etl_run", schema=None) as batch_op:
        batch_op.create_index("ix_etl_run_source_started", ["source", "started_at"], unique=False)
        batch_op.create_index("ix_etl_run_status", ["status"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("coin_id", sa.String(length=255), nullable=True),
        sa.Column(
            "record",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_quarantine_source_run", ["source", "run_id"], unique=False)

    op.create_table(
        "raw_coingecko",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("coin_id", sa.String(length=255), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_coingecko")),
        sa.UniqueConstraint("payload_hash", name=op.f("uq_raw_coingecko_payload_hash")),
    )
    with op.batch_alter_table("raw_coingecko", schema=None) as batch_op:
        batch_op.create_index("idx_coingecko_coin_time", ["coin_id", "ingested_at"], unique=False)

    op.create_table(
        "raw_coinpaprika",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("coin_id", sa.String(length=255), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_coinpaprika")),
        sa.UniqueConstraint("payload_hash", name=op.f("uq_raw_coinpaprika_payload_hash")),
    )
    with op.batch_alter_table("raw_coinpaprika", schema=None) as batch_op:
        batch_op.create_index("idx_coinpaprika_coin_time", ["coin_id", "ingested_at"], unique=False)

    op.create_table(
        "raw_csv",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("coin_id", sa.String(length=255), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_csv")),
        sa.UniqueConstraint("payload_hash", name=op.f("uq_raw_csv_payload_hash")),
    )
    with op.batch_alter_table("raw_csv", schema=None) as batch_op:
        batch_op.create_index("idx_csv_coin_time", ["coin_id", "ingested_at"], unique=False)

    op.create_table(
        "schema_drift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("expected", sa.String(length=255), nullable=True),
        sa.Column("observed", sa.String(length=255), nullable=True),
        sa.Column("sample_value", sa.Text(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_drift")),
        sa.UniqueConstraint(
            "run_id", "field", "kind", name=op.f("uq_schema_drift_run_id_field_kind")
        ),
    )
    with op.batch_alter_table("schema_drift", schema=None) as batch_op:
        batch_op.create_index(
            "ix_schema_drift_source_time", ["source", "detected_at"], unique=False
        )

    op.create_table(
        "asset_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("coin_id", sa.String(length=255), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_asset_source_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_source")),
        sa.UniqueConstraint("source", "coin_id", name=op.f("uq_asset_source_source_coin_id")),
    )
    with op.batch_alter_table("asset_source", schema=None) as batch_op:
        batch_op.create_index("ix_asset_source_asset_id", ["asset_id"], unique=False)

    op.create_table(
        "price_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_usd", sa.Double(), nullable=True),
        sa.Column("market_cap_usd", sa.Double(), nullable=True),
        sa.Column("volume_24h_usd", sa.Double(), nullable=True),
        sa.Column("open_usd", sa.Double(), nullable=True),
        sa.Column("high_usd", sa.Double(), nullable=True),
        sa.Column("low_usd", sa.Double(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_price_history_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_history")),
        sa.UniqueConstraint(
            "asset_id",
            "source",
            "observed_at",
            name=op.f("uq_price_history_asset_id_source_observed_at"),
        ),
    )
    with op.batch_alter_table("price_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_price_history_asset_time", ["asset_id", "observed_at"], unique=False
        )

    op.create_table(
        "unified_crypto",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("coin_id", sa.String(length=255), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("price_usd", sa.Double(), nullable=True),
        sa.Column("market_cap_usd", sa.Double(), nullable=True),
        sa.Column("volume_24h_usd", sa.Double(), nullable=True),
        sa.Column("circulating_supply", sa.Double(), nullable=True),
        sa.Column("total_supply", sa.Double(), nullable=True),
        sa.Column("max_supply", sa.Double(), nullable=True),
        sa.Column("percent_change_24h", sa.Double(), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_unified_crypto_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unified_crypto")),
        sa.UniqueConstraint("asset_id", "source", name=op.f("uq_unified_crypto_asset_id_source")),
    )
    with op.batch_alter_table("unified_crypto", schema=None) as batch_op:
        batch_op.create_index("idx_unified_coin_source", ["coin_id", "source"], unique=False)
        batch_op.create_index("idx_unified_symbol", ["symbol"], unique=False)
        batch_op.create_index("ix_unified_crypto_market_cap_usd", ["market_cap_usd"], unique=False)
    op.bulk_insert(
        sa.table(
            "data_version",
            sa.column("id", sa.Integer),
            sa.column("version", sa.BigInteger),
            sa.column("updated_at", sa.DateTime(timezone=True)),
        ),
        [{"id": 1, "version": 0, "updated_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    with op.batch_alter_table("unified_crypto", schema=None) as batch_op:
        batch_op.drop_index("ix_unified_crypto_market_cap_usd")
        batch_op.drop_index("idx_unified_symbol")
        batch_op.drop_index("idx_unified_coin_source")

    op.drop_table("unified_crypto")
    with op.batch_alter_table("price_history", schema=None) as batch_op:
        batch_op.drop_index("ix_price_history_asset_time")

    op.drop_table("price_history")
    with op.batch_alter_table("asset_source", schema=None) as batch_op:
        batch_op.drop_index("ix_asset_source_asset_id")

    op.drop_table("asset_source")
    with op.batch_alter_table("schema_drift", schema=None) as batch_op:
        batch_op.drop_index("ix_schema_drift_source_time")

    op.drop_table("schema_drift")
    with op.batch_alter_table("raw_csv", schema=None) as batch_op:
        batch_op.drop_index("idx_csv_coin_time")

    op.drop_table("raw_csv")
    with op.batch_alter_table("raw_coinpaprika", schema=None) as batch_op:
        batch_op.drop_index("idx_coinpaprika_coin_time")

    op.drop_table("raw_coinpaprika")
    with op.batch_alter_table("raw_coingecko", schema=None) as batch_op:
        batch_op.drop_index("idx_coingecko_coin_time")

    op.drop_table("raw_coingecko")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_source_run")

    op.drop_table("quarantine")
    with op.batch_alter_table("etl_run", schema=None) as batch_op:
        batch_op.drop_index("ix_etl_run_status")
        batch_op.drop_index("ix_etl_run_source_started")

    op.drop_table("etl_run")
    op.drop_table("etl_checkpoint")
    op.drop_table("data_version")
    op.drop_table("circuit_breaker")
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_index("ix_asset_symbol")

    op.drop_table("asset")
