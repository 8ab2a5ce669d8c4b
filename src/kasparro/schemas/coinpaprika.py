"""CoinPaprika ``GET /v1/tickers`` items (https://api.coinpaprika.com/#tag/Tickers)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kasparro.schemas.common import SOURCE_MODEL_CONFIG, Number, SupplyOrZero


class PaprikaQuote(BaseModel):
    """One entry of ``quotes`` (keyed by currency code)."""

    model_config = SOURCE_MODEL_CONFIG

    price: Number = Field(None, ge=0)
    volume_24h: Number = Field(None, ge=0)
    volume_24h_change_24h: Number = None
    market_cap: Number = Field(None, ge=0)
    market_cap_change_24h: Number = None
    percent_change_15m: Number = None
    percent_change_30m: Number = None
    percent_change_1h: Number = None
    percent_change_6h: Number = None
    percent_change_12h: Number = None
    percent_change_24h: Number = None
    percent_change_7d: Number = None
    percent_change_30d: Number = None
    percent_change_1y: Number = None
    ath_price: Number = None
    ath_date: str | None = None
    percent_from_price_ath: Number = None


class PaprikaTicker(BaseModel):
    """A ticker; supplies of 0 mean unknown, and ``circulating_supply`` is absent on the free plan."""

    model_config = SOURCE_MODEL_CONFIG

    id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    symbol: str = Field(min_length=1, max_length=64)
    rank: int | None = Field(None, ge=0)
    circulating_supply: SupplyOrZero = Field(None, ge=0)
    total_supply: SupplyOrZero = Field(None, ge=0)
    max_supply: SupplyOrZero = Field(None, ge=0)
    beta_value: Number = None
    first_data_at: str | None = None
    last_updated: datetime | None = None
    quotes: dict[str, PaprikaQuote] = Field(default_factory=dict)
