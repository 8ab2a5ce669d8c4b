"""Smoke: ``kasparro api --workers 2`` serves from two processes, and /metrics adds up both."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kasparro.config import Settings
from tests.smoke.test_serve import _free_port, _start_api_workers, _wait_until

LIVE = re.compile(
    r'^http_requests_total\{method="GET",route="/health/live",status="200"\} (\S+)$', re.M
)


def _live_count(base: str) -> float:
    # a new connection each time, so scrapes land on either worker
    text = httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=5).text
    match = LIVE.search(text)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_workers_share_their_http_metrics(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    metrics_dir = tmp_path / "prometheus"
    port = _free_port()
    proc = _start_api_workers(
        port,
        2,
        KASPARRO_DATABASE_URL=settings.database_url,
        KASPARRO_CSV_PATH=str(tmp_path / "none.csv"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    base = f"http://127.0.0.1:{port}"
    served = 0

    def live() -> bool:
        nonlocal served
        ok = httpx.get(f"{base}/health/live", headers={"Connection": "close"}, timeout=5)
        served += ok.status_code == 200
        return ok.status_code == 200

    try:
        _wait_until(live, 60, "the API", proc)
        for _ in range(40):
            assert live()
        workers = {p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(workers) == 2, sorted(metrics_dir.iterdir())  # both workers answered requests
        # whichever worker answers the scrape, it reports every request of both
        assert [_live_count(base) for _ in range(6)] == [float(served)] * 6
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert metrics_dir.is_dir()  # an operator's directory is kept
