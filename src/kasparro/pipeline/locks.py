"""Per-source run locks that never block: PostgreSQL advisory locks, or lock files on SQLite."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import zlib
from collections.abc import Iterator

from sqlalchemy import Engine, text

from kasparro.db.engine import is_sqlite, sqlite_path

log = logging.getLogger(__name__)

_LOCAL_GUARD = threading.Lock()
_LOCAL_LOCKS: dict[tuple[str, str], threading.Lock] = {}


def lock_key(source: str) -> int:
    """A stable signed 64-bit advisory-lock key for a source (crc32 of a namespaced name)."""
    return zlib.crc32(f"kasparro:source:{source}".encode()) | (0x4B50 << 32)


@contextlib.contextmanager
def source_lock(engine: Engine, source: str) -> Iterator[bool]:
    """Try to take the run lock of ``source``; yield True if this process now holds it.

    Never waits: a second acquirer (another thread, process or host sharing the database)
    gets False and should skip the source. The lock is released on exit.
    """
    if not is_sqlite(engine):
        with _postgres_lock(engine, source) as acquired:
            yield acquired
        return
    path = sqlite_path(str(engine.url))
    if path is None:
        with _local_lock(str(engine.url), source) as acquired:
            yield acquired
        return
    lock_path = path.with_name(f"{path.name}.{source}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _postgres_lock(engine: Engine, source: str) -> Iterator[bool]:
    key = lock_key(source)
    # a dedicated connection: session-level advisory locks belong to the connection holding them
    with engine.connect() as conn:
        acquired = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
        )
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                except Exception:
                    # a broken connection released the lock with its session; never pool it again
                    log.warning(
                        "could not release the run lock of %s; discarding the connection", source
                    )
                    conn.invalidate()


@contextlib.contextmanager
def _local_lock(url: str, source: str) -> Iterator[bool]:
    with _LOCAL_GUARD:
        lock = _LOCAL_LOCKS.setdefault((url, source), threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
