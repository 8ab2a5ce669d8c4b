"""CoinPaprika: every active coin in one ``GET /tickers?quotes=USD``, cut to the top N by rank."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kasparro.db.models import EtlCheckpoint
from kasparro.exceptions import RecordValidationError, RetriableSourceError
from kasparro.ingestion.api_source import HttpIngestion
from kasparro.ingestion.base import FetchedBatch
from kasparro.schemas.coinpaprika import PaprikaTicker
from kasparro.schemas.common import as_utc
from kasparro.schemas.unified import UnifiedRecord


def _rank_key(item: Any) -> tuple[int, int]:
    rank = item.get("rank") if isinstance(item, dict) else None
    if isinstance(rank, int) and not isinstance(rank, bool) and rank > 0:
        return (0, rank)
    return (1, 0)


class CoinPaprikaIngestion(HttpIngestion):
    name = "coinpaprika"
    model = PaprikaTicker

    def base_url(self) -> str:
        return self.settings.coinpaprika_url

    def headers(self) -> dict[str, str]:
        return self.settings.coinpaprika_headers()

    def min_interval(self) -> float:
        return self.settings.coinpaprika_min_interval

    def fetch(self, checkpoint: EtlCheckpoint | None) -> Iterator[FetchedBatch]:
        body = self.client.get_json("/tickers", {"quotes": "USD"})
        if not isinstance(body, list):
            raise RetriableSourceError(f"/tickers returned {type(body).__name__}, expected a list")
        top = sorted(body, key=_rank_key)[: self.settings.top_n_for(self.name)]
        size = self.settings.batch_size
        for start in range(0, len(top), size):
            yield FetchedBatch(top[start : start + size])

    def to_unified(self, item: PaprikaTicker) -> UnifiedRecord:
        quote = item.quotes.get("USD")
        if quote is None:
            raise RecordValidationError(f"no USD quote (quotes present: {sorted(item.quotes)[:5]})")
        return UnifiedRecord(
            coin_id=item.id,
            symbol=item.symbol.upper(),
            name=item.name,
            rank=item.rank or None,
            price_usd=quote.price,
            market_cap_usd=quote.market_cap,
            volume_24h_usd=quote.volume_24h,
            circulating_supply=item.circulating_supply,
            total_supply=item.total_supply,
            max_supply=item.max_supply,
            percent_change_24h=quote.percent_change_24h,
            source_updated_at=as_utc(item.last_updated),
        )
