"""Smoke: the real `kasparro serve` process against the local fake upstream, over HTTP, then SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kasparro.config import Settings
from tests.fakes import FakeUpstream, coins, write_history_csv

WORLD = coins(30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_api_workers(port: int, workers: int, **env: str) -> subprocess.Popen[bytes]:
    """``kasparro api --workers N`` in a session of its own, configured only by ``env`` (no
    KASPARRO_* setting or metrics directory of the test run leaks in)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KASPARRO_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kasparro", "api", "--workers", str(workers), "--port", str(port)],
        env={**clean, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} while waiting for {what}")
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def server(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], FakeUpstream]]:
    csv_path = tmp_path / "history.csv"
    write_history_csv(csv_path, WORLD[:4], days=5)
    settings = make_settings()
    port = _free_port()
    with FakeUpstream(WORLD, latency=(0.05, 0.1)) as upstream:
        # CoinGecko's first answer waits until the test releases it: the first pass stays in
        # flight for as long as the test needs (see the test's release)
        upstream.hold("coingecko")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KASPARRO_")}
        env.update(
            KASPARRO_DATABASE_URL=settings.database_url,
            KASPARRO_CSV_PATH=str(csv_path),
            KASPARRO_COINPAPRIKA_BASE_URL=upstream.coinpaprika_url,
            KASPARRO_COINGECKO_BASE_URL=upstream.coingecko_url,
            KASPARRO_COINGECKO_MIN_INTERVAL="0.2",
            KASPARRO_TOP_N="30",
            KASPARRO_SCHEDULE="6h",
            KASPARRO_ADMIN_API_KEY="smoke-admin-key-123",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "kasparro", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}", proc, upstream
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            assert proc.stdout is not None
            proc.stdout.close()


def test_serve_runs_the_first_pass_and_serves_every_endpoint(
    server: tuple[str, subprocess.Popen[bytes], Any],
) -> None:
    base, proc, upstream = server
    with httpx.Client(base_url=base, timeout=5) as client:
        _wait_until(lambda: client.get("/health/live").status_code == 200, 30, "the API", proc)

        def gecko_status() -> str | None:
            runs = client.get("/runs", params={"source": "coingecko"}).json()["data"]
            return runs[0]["status"] if runs else None

        _wait_until(
            lambda: upstream.held("coingecko") == 1 and gecko_status() == "running",
            30,
            "the first pass's CoinGecko run in flight",
            proc,
        )
        health_during = client.get("/health")
        # the first run does not delay the API: /health answers while that run is still going
        assert health_during.status_code == 200, health_during.text[:300]
        during = {s["source"]: s for s in health_during.json()["sources"]}
        assert during["coingecko"]["last_run_status"] == "running"
        assert gecko_status() == "running"  # and it still is (its request is held)
        upstream.release("coingecko")

        def pass_done() -> bool:
            runs = client.get("/runs").json()["data"]
            return len(runs) >= 3 and all(r["status"] != "running" for r in runs)

        _wait_until(pass_done, 60, "the immediate ETL pass", proc)
        runs = client.get("/runs").json()["data"]
        assert {r["source"]: r["status"] for r in runs} == {
            "coinpaprika": "success",
            "coingecko": "success",
            "csv": "success",
        }
        assert len(upstream.requests("coingecko")) >= 1

        data = client.get("/data", params={"symbol": "btc"}).json()
        assert {row["source"] for row in data["data"]} == {"coinpaprika", "coingecko", "csv"}
        assert len({row["asset_id"] for row in data["data"]}) == 1  # Bitcoin is one asset

        asset_id = data["data"][0]["asset_id"]
        run_id = runs[0]["id"]
        for path in [
            "/",
            "/health",
            "/stats",
            "/runs",
            f"/runs/{run_id}",
            "/assets",
            f"/assets/{asset_id}",
            f"/assets/{asset_id}/history",
            "/drift",
            "/metrics",
        ]:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
        assert "kasparro_etl" in client.get("/metrics").text

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    assert "smoke-admin-key-123" not in output  # secrets never reach the logs
    assert '"run_id"' in output  # structured JSON lines with run context
