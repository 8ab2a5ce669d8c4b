"""SQLite WAL checkpoints on a background thread, so writers never wait for them.

In WAL mode every commit appends pages to the ``-wal`` file, and a checkpoint copies them back
into the database file (with an fsync). By default SQLite runs that checkpoint inside whichever
commit pushes the WAL past its limit, so the ingest loop stops for the disk every few batches
(measured: a third of the time of a 100k-record load). SQLite's documentation suggests the
alternative used here: a dedicated connection on its own thread runs
``PRAGMA wal_checkpoint(PASSIVE)`` when writers commit. A passive checkpoint never blocks readers
or writers, and sqlite3 releases the GIL while it does the I/O, so it overlaps with the next
batch's validation. Writers keep their own automatic checkpoint at ``LIMIT_BYTES``, which is what
lets the WAL start over (see ``committed``).

The wake-up comes from SQLAlchemy's ``commit`` event, which fires just before the commit, so the
thread trails by one commit; the last one of a burst is copied by the next commit, the writer's
own checkpoint or ``Engine.dispose``.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from kasparro.observability.logging import get_logger

log = get_logger(__name__)

#: The thread starts once the WAL has grown past this (SQLite's own default limit is 1,000 pages,
#: 4 MB at SQLite's default page size).
START_BYTES = 4 * 1024 * 1024
#: An idle thread exits after this long; the next large commit starts it again.
IDLE_SECONDS = 30.0
#: Past this size the thread stands back: the writers' own automatic checkpoint (set to the
#: same size) completes the checkpoint so that the WAL starts over (see ``committed``).
LIMIT_BYTES = 64 * 1024 * 1024


class _Worker:
    """One checkpointing thread and its signals."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stop = False
        self.thread: threading.Thread | None = None


class WalCheckpointer:
    """Checkpoints one SQLite database file after commits, on a thread of its own."""

    def __init__(
        self, path: Path, *, start_bytes: int | None = None, limit_bytes: int | None = None
    ) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self.start_bytes = START_BYTES if start_bytes is None else start_bytes
        self.limit_bytes = LIMIT_BYTES if limit_bytes is None else limit_bytes
        self._lock = threading.Lock()
        self._worker: _Worker | None = None

    def committed(self) -> None:
        """Called on every commit of a writer connection: wake the thread (start it if the WAL is
        big enough to be worth it).

        A passive checkpoint never completes while a writer keeps appending, and the WAL only
        starts over after a complete one, so under a long load the thread alone would let it grow
        without end. Past ``LIMIT_BYTES`` the thread is left asleep; the writer's own automatic
        checkpoint then runs right after its commit with nobody appending, finds most pages
        already copied, completes, and the next transaction starts the WAL over (its file is cut
        back to the limit by ``journal_size_limit``).
        """
        try:
            size = self.wal.stat().st_size
        except FileNotFoundError:
            return
        if size < self.start_bytes or size > self.limit_bytes:
            return
        worker = self._worker
        if worker is None or not _alive(worker):
            with self._lock:
                worker = self._worker
                if worker is None or not _alive(worker):
                    worker = self._worker = _Worker()
                    worker.thread = threading.Thread(
                        target=self._loop,
                        args=(worker,),
                        name=f"wal-checkpoint:{self.path.name}",
                        daemon=True,
                    )
                    worker.thread.start()
        worker.wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread after one last checkpoint (``Engine.dispose`` calls this); a later
        large commit starts a new one."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is None or worker.thread is None:
            return
        worker.stop = True
        worker.wake.set()
        if worker.thread is not threading.current_thread():
            worker.thread.join(timeout)

    def _loop(self, worker: _Worker) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            log.warning("WAL checkpointer could not connect", extra={"error": str(exc)})
            return
        try:
            while True:
                woken = worker.wake.wait(IDLE_SECONDS)
                worker.wake.clear()
                if not woken and not worker.stop:
                    return  # idle: the next large commit starts a new thread
                self._checkpoint(conn)
                if worker.stop:
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # e.g. the file was removed; writers' own limit still applies
            log.warning("WAL checkpoint failed", extra={"error": str(exc)})


def _alive(worker: _Worker) -> bool:
    return worker.thread is not None and worker.thread.is_alive()
