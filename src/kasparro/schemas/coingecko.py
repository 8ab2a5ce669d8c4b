"""CoinGecko ``GET /api/v3/coins/markets`` rows: every numeric field may be null, int or float."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kasparro.schemas.common import SOURCE_MODEL_CONFIG, Number


class GeckoRoi(BaseModel):
    model_config = SOURCE_MODEL_CONFIG

    times: Number = None
    currency: str | None = None
    percentage: Number = None


class GeckoMarket(BaseModel):
    """A market row. ``id`` is the key; ``symbol`` is lower-case and not unique."""

    model_config = SOURCE_MODEL_CONFIG

    id: str = Field(min_length=1, max_length=255)
    symbol: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    image: str | None = None
    current_price: Number = Field(None, ge=0)
    market_cap: Number = Field(None, ge=0)
    market_cap_rank: int | None = Field(None, ge=0)
    fully_diluted_valuation: Number = None
    total_volume: Number = Field(None, ge=0)
    high_24h: Number = None
    low_24h: Number = None
    price_change_24h: Number = None
    price_change_percentage_24h: Number = None
    market_cap_change_24h: Number = None
    market_cap_change_percentage_24h: Number = None
    circulating_supply: Number = Field(None, ge=0)
    total_supply: Number = Field(None, ge=0)
    max_supply: Number = Field(None, ge=0)
    ath: Number = None
    ath_change_percentage: Number = None
    ath_date: str | None = None
    atl: Number = None
    atl_change_percentage: Number = None
    atl_date: str | None = None
    roi: GeckoRoi | None = None
    last_updated: datetime | None = None
