"""The Grafana dashboard in deploy/ queries only metrics /metrics exports (after a run)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kasparro.api import create_app
from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.fakes import coins, write_history_csv
from tests.observability.dashboard import dashboard_metric_names, exported_sample_names

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (route) (rate(http_requests_total{status=~"5.."}[5m]))', {"http_requests_total"}),
        (
            "histogram_quantile(0.95, sum by (le, source) (rate(x_seconds_bucket[1d])))",
            {"x_seconds_bucket"},
        ),
        (
            "time() - kasparro_etl_last_success_timestamp_seconds",
            {"kasparro_etl_last_success_timestamp_seconds"},
        ),
        ("min(up) / ignoring(job) b", {"up", "b"}),
        ("sum(rate(a[5m])) / clamp_min(sum(rate(a[5m])), 1e-9)", {"a"}),
    ],
)
def test_metric_names_are_read_out_of_promql(tmp_path: Path, expr: str, names: set[str]) -> None:
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps({"panels": [{"targets": [{"expr": expr}]}]}))
    assert dashboard_metric_names(path) == names


def test_the_dashboard_queries_only_exported_metrics(
    make_settings: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> None:
    queried = dashboard_metric_names()
    assert {
        "http_requests_total",
        "kasparro_etl_runs_total",
        "process_resident_memory_bytes",
    } <= queried
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, coins(3), days=2)
    settings = make_settings(csv_path=csv_path)
    [result] = run_pass(settings, engine, sources=["csv"])
    assert result.status == "success"
    with TestClient(create_app(settings, engine=engine)) as client:
        assert client.get("/health/live").status_code == 200
        page = client.get("/metrics").text
    missing = queried - exported_sample_names(page)
    assert not missing, f"the dashboard queries metrics /metrics does not export: {sorted(missing)}"
