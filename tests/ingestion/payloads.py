"""Realistic single records from each API, shared by the ingestion tests."""

from __future__ import annotations

from typing import Any

PAPRIKA_BTC: dict[str, Any] = {
    "id": "btc-bitcoin",
    "name": "Bitcoin",
    "symbol": "BTC",
    "rank": 1,
    "circulating_supply": 19453956,
    "total_supply": 19453950,
    "max_supply": 21000000,
    "beta_value": 1.0609,
    "first_data_at": "2010-07-17T00:00:00Z",
    "last_updated": "2023-08-11T08:09:18Z",
    "quotes": {
        "USD": {
            "price": 29427.918932650417,
            "volume_24h": 17385954206.667908,
            "market_cap": 572489440087,
            "percent_change_15m": 0.02,
            "percent_change_24h": -0.26,
            "ath_price": 68692.13703693185,
            "ath_date": "2021-11-10T16:50:00Z",
            "percent_from_price_ath": -57.17,
        }
    },
}

GECKO_BTC: dict[str, Any] = {
    "id": "bitcoin",
    "symbol": "btc",
    "name": "Bitcoin",
    "image": "https://assets.coingecko.com/coins/images/1/large/bitcoin.png",
    "current_price": 16730.75,
    "market_cap": 322053364166,
    "market_cap_rank": 1,
    "fully_diluted_valuation": 351324226502,
    "total_volume": 12892500366,
    "high_24h": 16759.71,
    "low_24h": 16554.8,
    "price_change_24h": 159.29,
    "price_change_percentage_24h": 0.96122,
    "circulating_supply": 19250368,
    "total_supply": 21000000,
    "max_supply": 21000000,
    "ath": 69045,
    "ath_date": "2021-11-10T14:24:11.849Z",
    "roi": None,
    "last_updated": "2023-01-02T17:08:13.102Z",
}
