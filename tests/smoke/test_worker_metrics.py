"""Smoke: ``kasparro api --workers 2`` (the compose default) exports process metrics of each live
worker, and every metric the Grafana dashboard queries."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.fakes import coins, write_history_csv
from tests.observability.dashboard import dashboard_metric_names, exported_sample_names
from tests.smoke.test_serve import _free_port, _start_api_workers, _wait_until

PROCESS_METRICS = (
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
)


def _scrape(base: str) -> tuple[str, dict[str, dict[str, float]]]:
    """The page, and sample name → pid → value for the process metrics on it."""
    # a new connection each time, so scrapes land on either worker
    text = httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=5).text
    per_pid: dict[str, dict[str, float]] = {name: {} for name in PROCESS_METRICS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in per_pid:
                per_pid[sample.name][sample.labels["pid"]] = sample.value
    return text, per_pid


def _workers_gauge(text: str) -> float:
    [value] = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "kasparro_api_workers"
    ]
    return value


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_workers_export_their_process_metrics(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, coins(3), days=2)
    settings = make_settings(csv_path=csv_path)
    [result] = run_pass(settings, engine, sources=["csv"])  # so the ETL metrics exist
    assert result.status == "success"
    port = _free_port()
    proc = _start_api_workers(
        port, 2, KASPARRO_DATABASE_URL=settings.database_url, KASPARRO_CSV_PATH=str(csv_path)
    )
    base = f"http://127.0.0.1:{port}"
    queried = dashboard_metric_names()

    def both_workers_up() -> bool:
        text, per_pid = _scrape(base)
        return len(per_pid["process_resident_memory_bytes"]) == 2 and _workers_gauge(text) == 2

    try:
        _wait_until(both_workers_up, 60, "two workers", proc)
        pids: set[str] = set()
        for _ in range(6):
            text, per_pid = _scrape(base)
            for name in PROCESS_METRICS:
                assert len(per_pid[name]) == 2, (name, per_pid[name])
                assert all(value > 0 for value in per_pid[name].values()), per_pid[name]
            pids |= set(per_pid["process_resident_memory_bytes"])
            assert _workers_gauge(text) == 2
            missing = queried - exported_sample_names(text)
            assert not missing, f"the dashboard queries metrics not exported: {sorted(missing)}"
        assert len(pids) == 2  # the same two workers, whichever answered
        assert str(proc.pid) not in pids  # the workers, not their supervisor

        # a worker dies: it leaves the metrics, and the one started in its place joins them
        victim = min(pids)
        os.kill(int(victim), signal.SIGKILL)

        def replaced() -> bool:
            text, per_pid = _scrape(base)
            now = set(per_pid["process_resident_memory_bytes"])
            return len(now) == 2 and victim not in now and _workers_gauge(text) == 2

        _wait_until(replaced, 60, "the killed worker to be replaced", proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
