"""Kasparro: a self-hosted crypto market-data pipeline with a read API."""

__version__ = "0.1.0"
