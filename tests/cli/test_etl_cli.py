"""The `kasparro` command as users run it: exit codes, summary, config errors, masked secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kasparro.cli.etl import exit_code
from kasparro.config import Settings
from kasparro.ingestion.base import RunResult
from tests.fakes import FakeUpstream, Fault, coins


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KASPARRO_")}
    base["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "kasparro", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (["success", "success", "success"], 0),
        (["success", "skipped"], 0),
        (["success", "failed", "success"], 1),
        (["partial", "success"], 1),
        (["failed", "failed", "interrupted"], 2),
        (["failed"], 2),
    ],
)
def test_exit_code(statuses: list[str], code: int) -> None:
    assert exit_code([RunResult(1, f"s{i}", s) for i, s in enumerate(statuses)]) == code


def test_etl_run_reports_each_source_and_exits_by_outcome(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    with FakeUpstream(coins(8)) as upstream:
        env = {
            "KASPARRO_DATABASE_URL": settings.database_url,
            "KASPARRO_CSV_PATH": str(tmp_path / "crypto.csv"),
            "KASPARRO_COINPAPRIKA_BASE_URL": upstream.coinpaprika_url,
            "KASPARRO_COINGECKO_BASE_URL": upstream.coingecko_url,
            "KASPARRO_TOP_N": "8",
        }
        first = _run(["etl", "run"], env, tmp_path)
        upstream.inject("coingecko", Fault.http(401))
        second = _run(["etl", "run"], env, tmp_path)

    assert first.returncode == 0, first.stderr[-2000:]
    for name in ("coinpaprika", "coingecko", "csv"):
        assert name in first.stdout
    assert "success" in first.stdout
    assert (tmp_path / "crypto.csv").read_text().startswith("# SAMPLE DATA")
    assert second.returncode == 1
    assert "failed" in second.stdout


def test_all_sources_failing_exits_2(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    env = {
        "KASPARRO_DATABASE_URL": settings.database_url,
        "KASPARRO_SOURCES": "coinpaprika,coingecko",
        "KASPARRO_COINPAPRIKA_BASE_URL": "http://127.0.0.1:9/v1",
        "KASPARRO_COINGECKO_BASE_URL": "http://127.0.0.1:9/api/v3",
        "KASPARRO_RETRY_ATTEMPTS": "1",
    }
    result = _run(["etl", "run"], env, tmp_path)
    assert result.returncode == 2
    assert "connection error" in result.stdout


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KASPARRO_TOP_N": "lots"}, "KASPARRO_TOP_N"),
        ({"KASPARRO_SOURCES": "coinpaprika,binance"}, "KASPARRO_SOURCES"),
        ({"KASPARRO_COINGECKO_KEY_TYPE": "free"}, "KASPARRO_COINGECKO_KEY_TYPE"),
        ({"KASPARRO_SCHEDULE": "sometimes"}, "KASPARRO_SCHEDULE"),
        ({"KASPARRO_DATABASE_URL": "mysql://x/y"}, "KASPARRO_DATABASE_URL"),
    ],
)
def test_bad_configuration_fails_at_start_naming_the_variable(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = _run(["etl", "run"], env, tmp_path)
    assert result.returncode == 2
    assert named in result.stderr


def test_unknown_source_option_is_rejected(tmp_path: Path) -> None:
    result = _run(
        ["etl", "run", "--source", "binance"],
        {"KASPARRO_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"},
        tmp_path,
    )
    assert result.returncode == 2
    assert "binance" in result.stderr


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {
        "KASPARRO_COINGECKO_API_KEY": "cg-secret-value-1",
        "KASPARRO_ADMIN_API_KEY": "admin-secret-value-2",
        "KASPARRO_DATABASE_URL": "postgresql+psycopg://kasparro:db-secret-3@127.0.0.1:5432/kasparro",
    }
    result = _run(["config", "show"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "KASPARRO_COINGECKO_API_KEY" in result.stdout
    assert "cg-secret-value-1" not in result.stdout
    assert "admin-secret-value-2" not in result.stdout
    assert "db-secret-3" not in result.stdout


def test_sources_lists_every_source(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    result = _run(
        ["sources"],
        {"KASPARRO_DATABASE_URL": make_settings().database_url, "KASPARRO_SOURCES": "csv"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for name in ("coinpaprika", "coingecko", "csv"):
        assert name in result.stdout
