"""Symbols stored upper-case everywhere, so a case-insensitive symbol filter is an equality the
symbol indexes answer. Every mapper has always written them so; this makes the rule hold for rows
written any other way (by hand or by another tool) before the API starts relying on it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("unified_crypto", "asset", "asset_source")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"UPDATE {table} SET symbol = upper(symbol) WHERE symbol <> upper(symbol)")  # noqa: S608 - constant names


def downgrade() -> None:
    """Nothing to undo: upper-case symbols are valid under every earlier revision."""
