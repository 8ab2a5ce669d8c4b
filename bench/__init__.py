"""Kasparro's benchmarks: ingest, passes under rate limits, API load and memory (``make bench``)."""
