"""Price observations as the history endpoint reads them: epoch seconds computed by the database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.api.history import buckets
from kasparro.db import queries
from kasparro.db.models import Asset, PriceHistory


@pytest.mark.parametrize(
    ("observed", "epoch"),
    [
        (datetime(2024, 1, 1, 12, 59, 59, 999_700, tzinfo=UTC), 1704113999),  # not rounded up
        (datetime(2024, 1, 1, 13, 0, 0, tzinfo=UTC), 1704114000),
        (datetime(1969, 12, 31, 23, 0, 0, 500_000, tzinfo=UTC), -3600),
    ],
)
def test_observations_carry_whole_epoch_seconds_and_stay_in_their_bucket(
    engine: Engine, observed: datetime, epoch: int
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Asset).values(id=1, symbol="BTC", name="Bitcoin", match_key="BTC|bitcoin")
        )
        conn.execute(
            sa.insert(PriceHistory).values(
                asset_id=1, source="csv", observed_at=observed, price_usd=1.0
            )
        )
    window = (datetime(1969, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    with engine.connect() as conn:
        rows = queries.price_observations(
            conn=conn, asset_id=1, start=window[0], end=window[1], source=None
        )
    assert rows == [(epoch, 1.0, None, None, None)]
    [bucket] = buckets(rows, 3600)
    assert bucket.start == datetime.fromtimestamp(epoch - epoch % 3600, UTC)
