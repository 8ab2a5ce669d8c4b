"""``kasparro db backup|restore|verify`` end to end, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from kasparro.cli import app
from kasparro.db.models import Base
from tests.conftest import count_rows
from tests.pipeline.test_backup import seed

T = Base.metadata.tables
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("cli_on_test_database")


def test_backup_then_restore_then_verify(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    result = runner.invoke(app, ["db", "backup", "--dir", str(tmp_path / "bk")])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.parent == tmp_path / "bk"
    assert path.is_file()

    with engine.begin() as conn:
        conn.execute(T["price_history"].delete())

    result = runner.invoke(app, ["db", "restore", str(path), "--yes"])
    assert result.exit_code == 0, result.output
    assert "restored" in result.output
    assert count_rows(engine, "price_history") == 12

    result = runner.invoke(app, ["db", "verify"])
    assert result.exit_code == 0, result.output
    assert "ok unified rows trace to raw payloads" in result.output


def test_backup_defaults_to_the_configured_directory(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_BACKUP_DIR", str(tmp_path / "configured"))
    result = runner.invoke(app, ["db", "backup"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "configured").iterdir())) == 1


def test_verify_fails_naming_the_problem(engine: Engine) -> None:
    seed(engine)
    with engine.begin() as conn:
        conn.execute(T["raw_coingecko"].delete().where(T["raw_coingecko"].c.coin_id == "coin-0"))
        conn.execute(T["etl_checkpoint"].update().values(run_id=999))
    result = runner.invoke(app, ["db", "verify"])
    assert result.exit_code == 1
    assert "FAIL unified rows trace to raw payloads" in result.output
    assert "1 unified coingecko row(s) have no raw payload in raw_coingecko" in result.output
    assert "points at run 999, which does not exist" in result.output


def test_restore_of_a_missing_file_fails(engine: Engine, tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "restore", str(tmp_path / "nope.sqlite"), "--yes"])
    assert result.exit_code == 1
    assert "does not exist" in result.output


@pytest.mark.parametrize("command", [["db", "verify"], ["db", "restore", "any.db", "--yes"]])
def test_commands_that_do_not_upgrade_still_fail_cleanly_without_a_database(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 with one line naming the problem, as ``etl run`` and ``db upgrade`` do; not a
    traceback with exit 1."""
    monkeypatch.setenv("KASPARRO_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "database unreachable" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
