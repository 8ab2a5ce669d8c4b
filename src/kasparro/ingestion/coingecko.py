"""CoinGecko: ``GET /coins/markets`` ordered by market cap, paged 250 at a time for large N."""

from __future__ import annotations

import math
from collections.abc import Iterator

from kasparro.db.models import EtlCheckpoint
from kasparro.exceptions import RetriableSourceError
from kasparro.ingestion.api_source import HttpIngestion
from kasparro.ingestion.base import FetchedBatch
from kasparro.schemas.coingecko import GeckoMarket
from kasparro.schemas.common import as_utc
from kasparro.schemas.unified import UnifiedRecord


class CoinGeckoIngestion(HttpIngestion):
    name = "coingecko"
    model = GeckoMarket

    def base_url(self) -> str:
        return self.settings.coingecko_url

    def headers(self) -> dict[str, str]:
        return self.settings.coingecko_headers()

    def min_interval(self) -> float:
        return self.settings.coingecko_min_interval

    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        wanted = self.settings.top_n_for(self.name)
        per_page = min(self.settings.coingecko_per_page, wanted)
        for page in range(1, math.ceil(wanted / per_page) + 1):
            params = {
                "vs_currency": "usd",
                "order": "market_cap_desc",
                "per_page": per_page,
                "page": page,
            }
            rows = self.client.get_json("/coins/markets", params)
            if not isinstance(rows, list):
                raise RetriableSourceError(
                    f"/coins/markets page {page} returned {type(rows).__name__}, expected a list"
                )
            rows = rows[: wanted - (page - 1) * per_page]
            if rows:
                yield FetchedBatch(rows)
            if len(rows) < per_page:
                return

    def to_unified(self, item: GeckoMarket) -> UnifiedRecord:
        return UnifiedRecord(
            coin_id=item.id,
            symbol=item.symbol.upper(),
            name=item.name,
            rank=item.market_cap_rank,
            price_usd=item.current_price,
            market_cap_usd=item.market_cap,
            volume_24h_usd=item.total_volume,
            circulating_supply=item.circulating_supply,
            total_supply=item.total_supply,
            max_supply=item.max_supply,
            percent_change_24h=item.price_change_percentage_24h,
            source_updated_at=as_utc(item.last_updated),
        )
