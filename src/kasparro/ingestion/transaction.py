"""A write transaction that spans batches until it has been open for a while.

Every commit writes each page the transaction touched; with a dozen indexes on keys in no
particular order that is most of an index per commit, whatever the batch size. Holding the
transaction for a few seconds of batches pays that once per interval instead of once per batch.
Nothing about durability changes in kind: the checkpoint is written inside the same transaction
as the data it covers, so a crash loses at most the open interval (plus the batch being written),
and the next run redoes it. A transaction never waits on the network: HTTP sources commit before
each upstream request (``BaseIngestion.commit_before_waiting``).
"""

from __future__ import annotations

import contextlib
import time

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import SQLAlchemyError


class SpanningTransaction:
    """Opened on first use; the caller commits when :meth:`due` (or at the end of its work)."""

    def __init__(self, engine: Engine, *, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._conn: Connection | None = None
        self._trans: RootTransaction | None = None
        self._opened = 0.0

    @property
    def is_open(self) -> bool:
        return self._trans is not None

    def connection(self) -> Connection:
        """The open transaction's connection, beginning one if none is open."""
        if self._conn is None or self._trans is None:
            conn = self.engine.connect()
            try:
                self._trans = conn.begin()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._opened = time.monotonic()
        return self._conn

    def due(self) -> bool:
        """Open for at least ``interval`` seconds (always, with an interval of 0)."""
        return self.is_open and time.monotonic() - self._opened >= self.interval

    def commit(self) -> None:
        if self._trans is None:
            return
        try:
            self._trans.commit()
        finally:
            self._close()

    def rollback(self) -> None:
        """Abandon the open transaction; quiet, since the connection may be what failed."""
        if self._trans is None:
            return
        with contextlib.suppress(SQLAlchemyError):
            self._trans.rollback()
        self._close()

    def _close(self) -> None:
        conn, self._conn, self._trans = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()
