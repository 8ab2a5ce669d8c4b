"""API indexes: unified records in the default sort order (market cap descending, NULLs last, id).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_unified_crypto_market_cap_desc_id"


def upgrade() -> None:
    market_cap: sa.ColumnElement[object] = sa.column("market_cap_usd").desc()
    if op.get_bind().dialect.name == "postgresql":
        market_cap = market_cap.nulls_last()
    # SQLite has no NULLS LAST in index definitions; its DESC order puts NULLs last already
    op.create_index(INDEX, "unified_crypto", [market_cap, sa.column("id").desc()], unique=False)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="unified_crypto")
