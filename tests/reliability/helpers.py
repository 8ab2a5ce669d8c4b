"""Shared checks for the reliability suite: subprocess environments, natural keys, verify."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.config import Settings
from tests.conftest import settings_for as settings_for  # re-exported for the reliability tests

# every table's natural key: a row repeated on it is a duplicate
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "asset": ("match_key",),
    "asset_source": ("source", "coin_id"),
    "raw_coinpaprika": ("payload_hash",),
    "raw_coingecko": ("payload_hash",),
    "raw_csv": ("payload_hash",),
    "unified_crypto": ("asset_id", "source"),
    "price_history": ("asset_id", "source", "observed_at"),
    "etl_checkpoint": ("source",),
    "schema_drift": ("run_id", "field", "kind"),
    "circuit_breaker": ("source",),
    "data_version": ("id",),
}


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for ``python -m kasparro ...`` against these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASPARRO_")}
    env.update(
        KASPARRO_DATABASE_URL=settings.database_url,
        KASPARRO_CSV_PATH=str(settings.csv_path),
        KASPARRO_COINPAPRIKA_BASE_URL=settings.coinpaprika_url,
        KASPARRO_COINGECKO_BASE_URL=settings.coingecko_url,
        KASPARRO_COINPAPRIKA_MIN_INTERVAL=str(settings.coinpaprika_min_interval),
        KASPARRO_COINGECKO_MIN_INTERVAL=str(settings.coingecko_min_interval),
        KASPARRO_COINGECKO_PER_PAGE=str(settings.coingecko_per_page),
        KASPARRO_TOP_N=str(settings.top_n),
        KASPARRO_BATCH_SIZE=str(settings.batch_size),
        KASPARRO_COMMIT_INTERVAL=str(settings.commit_interval),
        KASPARRO_RETRY_MIN_WAIT=str(settings.retry_min_wait),
        KASPARRO_RETRY_MAX_WAIT=str(settings.retry_max_wait),
        KASPARRO_HTTP_TIMEOUT=str(settings.http_timeout),
        KASPARRO_RATE_LIMIT_PER_MINUTE=str(settings.rate_limit_per_minute),
        KASPARRO_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def kasparro(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kasparro <args>`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "kasparro", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def duplicates(engine: Engine) -> dict[str, int]:
    """Per table, how many natural keys are stored more than once (only tables with any)."""
    found = {}
    with engine.connect() as conn:
        for table, key in NATURAL_KEYS.items():
            cols = ", ".join(key)
            sql = f"SELECT count(*) FROM (SELECT {cols} FROM {table} GROUP BY {cols} HAVING count(*) > 1) d"
            count = int(conn.execute(sa.text(sql)).scalar_one())
            if count:
                found[table] = count
    return found


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def history_counts(engine: Engine) -> dict[str, int]:
    return dict(rows(engine, "SELECT source, count(*) FROM price_history GROUP BY source"))


def loaded_totals(engine: Engine) -> dict[str, int]:
    return {
        s: int(n)
        for s, n in rows(engine, "SELECT source, sum(loaded) FROM etl_run GROUP BY source")
    }


def wait_for(condition: Any, *, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail the test after ``timeout`` seconds."""
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)
