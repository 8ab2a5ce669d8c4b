"""Slow (soak and load) cases run only under ``make reliability``: ``-m slow`` or KASPARRO_RELIABILITY=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _slow_enabled(config: pytest.Config) -> bool:
    if os.environ.get("KASPARRO_RELIABILITY", "") in ("1", "true", "yes"):
        return True
    markexpr = str(config.getoption("markexpr", "") or "")
    return "slow" in markexpr and "not slow" not in markexpr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _slow_enabled(config):
        return
    skip = pytest.mark.skip(reason="slow reliability case: run `make reliability`")
    for item in items:
        if item.path.is_relative_to(HERE) and item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
