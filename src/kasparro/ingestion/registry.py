"""The registered sources, by name."""

from __future__ import annotations

from kasparro.ingestion.base import BaseIngestion
from kasparro.ingestion.coingecko import CoinGeckoIngestion
from kasparro.ingestion.coinpaprika import CoinPaprikaIngestion
from kasparro.ingestion.csv_source import CsvIngestion

SOURCES: dict[str, type[BaseIngestion]] = {
    CoinPaprikaIngestion.name: CoinPaprikaIngestion,
    CoinGeckoIngestion.name: CoinGeckoIngestion,
    CsvIngestion.name: CsvIngestion,
}
