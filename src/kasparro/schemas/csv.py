"""CSV rows, after header normalization: the unified layout or the daily-history layout."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from kasparro.schemas.common import SOURCE_MODEL_CONFIG

# Header spellings accepted for each canonical column (after lower-casing, spaces and dashes -> _).
COLUMN_ALIASES: dict[str, str] = {
    "coin_id": "coin_id",
    "id": "coin_id",
    "symbol": "symbol",
    "ticker": "symbol",
    "name": "name",
    "price_usd": "price_usd",
    "price": "price_usd",
    "close": "price_usd",
    "market_cap_usd": "market_cap_usd",
    "market_cap": "market_cap_usd",
    "marketcap": "market_cap_usd",
    "volume_24h_usd": "volume_24h_usd",
    "volume_24h": "volume_24h_usd",
    "volume": "volume_24h_usd",
    "circulating_supply": "circulating_supply",
    "total_supply": "total_supply",
    "max_supply": "max_supply",
    "percent_change_24h": "percent_change_24h",
    "change_24h": "percent_change_24h",
    "rank": "rank",
    "last_updated": "last_updated",
    "date": "last_updated",
    "timestamp": "last_updated",
    "open": "open_usd",
    "high": "high_usd",
    "low": "low_usd",
    "sno": "row_number",
}

NULL_TOKENS = frozenset({"", "nan", "null", "none", "n/a", "na", "-"})


def _csv_number(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in NULL_TOKENS:
            return None
        try:
            number = float(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"not a number: {text[:40]!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"not a finite number: {text[:40]!r}")
        return number
    return value


CsvNumber = Annotated[float | None, BeforeValidator(_csv_number)]


class CsvRow(BaseModel):
    """One CSV row. The price is required; other empty cells are null, never NaN."""

    model_config = SOURCE_MODEL_CONFIG

    coin_id: str | None = Field(None, max_length=255)
    symbol: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    price_usd: Annotated[float, BeforeValidator(_csv_number)] = Field(ge=0)
    market_cap_usd: CsvNumber = Field(None, ge=0)
    volume_24h_usd: CsvNumber = Field(None, ge=0)
    circulating_supply: CsvNumber = Field(None, ge=0)
    total_supply: CsvNumber = Field(None, ge=0)
    max_supply: CsvNumber = Field(None, ge=0)
    percent_change_24h: CsvNumber = None
    rank: Annotated[float | None, BeforeValidator(_csv_number)] = Field(None, ge=0)
    last_updated: datetime | None = None
    open_usd: CsvNumber = Field(None, ge=0)
    high_usd: CsvNumber = Field(None, ge=0)
    low_usd: CsvNumber = Field(None, ge=0)
    row_number: str | None = None


#: The float columns (the ingest path converts their plainly written cells before validation).
CSV_NUMBER_FIELDS = tuple(
    name
    for name, info in CsvRow.model_fields.items()
    if any(getattr(m, "func", None) is _csv_number for m in info.metadata)
)
