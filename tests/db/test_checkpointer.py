"""SQLite writers leave WAL checkpoints to a background thread, which keeps the database file current."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from kasparro.db import checkpointer as checkpointer_module
from kasparro.db.checkpointer import WalCheckpointer
from kasparro.db.engine import make_engine


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wal-checkpoint:")]


def _write_megabytes(engine: sa.Engine, megabytes: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS blob (id INTEGER PRIMARY KEY, body TEXT)")
    for _ in range(megabytes):  # one commit per MB
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO blob (body) VALUES (?)", [("x" * 4000,) for _ in range(256)]
            )


def _wait_for(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_large_commits_are_checkpointed_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        _write_megabytes(engine, 8)
        # the writers' own checkpoint starts at 64 MB, so only the background thread can have
        # copied the pages into the database file
        assert _wait_for(lambda: path.stat().st_size > 6 * 1024 * 1024)
        assert any(t.name == f"wal-checkpoint:{path.name}" for t in _checkpoint_threads())
    finally:
        engine.dispose()
    assert not any(t.name == f"wal-checkpoint:{path.name}" for t in _checkpoint_threads())
    # disposing is not the end: the same engine keeps working and checkpointing
    _write_megabytes(engine, 6)
    assert _wait_for(lambda: path.stat().st_size > 12 * 1024 * 1024)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blob").scalar_one() == 14 * 256
    engine.dispose()


def test_small_databases_start_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "small.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert not any(t.name == f"wal-checkpoint:{path.name}" for t in _checkpoint_threads())
    finally:
        engine.dispose()


def test_readers_do_not_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpointer_module, "START_BYTES", 0)
    path = tmp_path / "r.db"
    name = f"wal-checkpoint:{path.name}"
    raw = sqlite3.connect(path, isolation_level=None)  # keeps the WAL in place while open
    try:
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE t (x TEXT)")
        raw.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
        reader = make_engine(f"sqlite:///{path}", writer=False)
        with reader.begin() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
        assert not any(t.name == name for t in _checkpoint_threads())
        reader.dispose()
        writer = make_engine(f"sqlite:///{path}")  # the control: a writer's commit starts one
        with writer.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES ('y')")
        assert any(t.name == name for t in _checkpoint_threads())
        writer.dispose()
    finally:
        raw.close()


def test_no_wal_file_no_thread_and_close_stops_the_thread(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(tmp_path / "gone.db", start_bytes=0)
    checkpointer.committed()  # no WAL file yet: nothing to checkpoint
    assert not any(t.name == "wal-checkpoint:gone.db" for t in _checkpoint_threads())
    (tmp_path / "gone.db-wal").write_bytes(b"")
    checkpointer.committed()
    assert any(t.name == "wal-checkpoint:gone.db" for t in _checkpoint_threads())
    checkpointer.close(timeout=5)
    assert not any(t.name == "wal-checkpoint:gone.db" for t in _checkpoint_threads())


def test_the_wal_starts_over_while_a_writer_keeps_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passive checkpoint never completes under a busy writer, so if the thread alone
    checkpointed, the WAL would grow with every commit of a long load (seen: 3 GB during a 1 GB
    CSV ingest)."""
    monkeypatch.setattr(checkpointer_module, "LIMIT_BYTES", 2 * 1024 * 1024)
    monkeypatch.setattr(checkpointer_module, "START_BYTES", 512 * 1024)
    path = tmp_path / "busy.db"
    wal = tmp_path / "busy.db-wal"
    engine = make_engine(f"sqlite:///{path}")
    try:
        _write_megabytes(engine, 40)
        assert wal.stat().st_size < 8 * 1024 * 1024
        assert path.stat().st_size > 30 * 1024 * 1024
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM blob").scalar_one() == 40 * 256
    finally:
        engine.dispose()


def _pragmas(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    return int(page), int(pages)


def test_a_new_database_gets_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """New files take PAGE_SIZE; a file made with SQLite's default keeps it. Either way the
    writer's own checkpoint starts at LIMIT_BYTES, counted in that file's pages."""
    from kasparro.db.engine import PAGE_SIZE

    new = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    _write_megabytes(new, 1)
    assert _pragmas(new) == (PAGE_SIZE, checkpointer_module.LIMIT_BYTES // PAGE_SIZE)
    new.dispose()

    old_path = tmp_path / "old.db"
    with sqlite3.connect(old_path) as plain:  # SQLite's default page size
        plain.execute("CREATE TABLE t (x)")
        default = plain.execute("PRAGMA page_size").fetchone()[0]
    plain.close()
    assert default != PAGE_SIZE
    old = make_engine(f"sqlite:///{old_path}")
    _write_megabytes(old, 1)
    assert _pragmas(old) == (default, checkpointer_module.LIMIT_BYTES // default)
    old.dispose()
