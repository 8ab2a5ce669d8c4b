"""Per-source run locks: a second acquirer gets False at once, on both databases."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from kasparro.db.engine import make_engine
from kasparro.pipeline.locks import lock_key, source_lock


def test_second_acquirer_on_another_engine_is_refused(db_url: str) -> None:
    first, second = make_engine(db_url), make_engine(db_url)
    try:
        with source_lock(first, "coingecko") as held:
            assert held is True
            with source_lock(second, "coingecko") as again:
                assert again is False
            with source_lock(second, "coinpaprika") as other:
                assert other is True
        with source_lock(second, "coingecko") as after_release:
            assert after_release is True
    finally:
        first.dispose()
        second.dispose()


def test_second_acquirer_in_another_thread_is_refused(engine: Engine) -> None:
    seen: list[bool] = []
    with source_lock(engine, "csv") as held:
        assert held is True
        thread = threading.Thread(target=lambda: seen.append(_try(engine, "csv")))
        thread.start()
        thread.join()
    assert seen == [False]


def _try(engine: Engine, source: str) -> bool:
    with source_lock(engine, source) as acquired:
        return acquired


def test_in_memory_sqlite_uses_a_process_lock() -> None:
    engine = make_engine("sqlite://")
    with source_lock(engine, "csv") as held:
        assert held is True
        assert _try(engine, "csv") is False
    assert _try(engine, "csv") is True


def test_lock_keys_are_stable_and_distinct() -> None:
    keys = {lock_key(s) for s in ("coinpaprika", "coingecko", "csv")}
    assert len(keys) == 3
    assert lock_key("csv") == lock_key("csv")
    assert all(0 < k < 2**63 for k in keys)
