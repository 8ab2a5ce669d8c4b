"""Bringing the schema to head when a long-running service starts, whether or not the database
is there yet.

A one-shot command (``etl run``, ``db upgrade``) fails at once with a clear error when the
database is unreachable. A service instead comes up anyway: its API answers ``/health`` with 503
while the database is away, the scheduler waits, and the schema is upgraded the moment the
database answers, on a thread of its own, without a restart.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from kasparro.db.engine import upgrade_schema
from kasparro.exceptions import DatabaseUnavailableError
from kasparro.observability.logging import get_logger

log = get_logger(__name__)


class SchemaGate:
    """Open once the schema is at head. :meth:`open` tries at once; while the database is
    unreachable it keeps trying in the background, every ``retry_seconds`` doubling up to
    ``max_retry_seconds``, until it succeeds or ``stop`` is set. With ``release``, the engine's
    connections are closed once the schema is at head (for a process that does not write)."""

    def __init__(
        self,
        engine: Engine,
        *,
        stop: threading.Event,
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 30.0,
        release: bool = False,
    ) -> None:
        self.engine = engine
        self.release = release  # a process that only reads: drop the connection once done
        self.stop = stop
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.ready = threading.Event()
        self.failed = threading.Event()  # gave up: an error retrying cannot cure
        self.attempts = 0
        self.last_error: str | None = None

    def open(self) -> bool:
        """One attempt now; True when the schema is at head. Otherwise the error is logged, and
        the attempts go on in the background."""
        if self._attempt():
            return True
        log.error(
            "database unreachable at start; retrying in the background until it answers "
            "(meanwhile an API answers /health with 503)",
            extra={"error": self.last_error},
        )
        threading.Thread(target=self._keep_trying, name="schema-gate", daemon=True).start()
        return False

    def wait(self) -> bool:
        """Block until the schema is at head (True), or ``stop`` is set or the upgrade failed
        for a reason other than the database being away (False)."""
        while not self.ready.is_set():
            if self.failed.is_set() or self.stop.wait(0.2):
                return self.ready.is_set()
        return True

    def _attempt(self) -> bool:
        self.attempts += 1
        try:
            upgrade_schema(self.engine)
        except (DatabaseUnavailableError, DBAPIError) as exc:  # away, or dropped mid-migration
            self.last_error = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            return False
        self.ready.set()
        if self.release:
            self.engine.dispose()
        if self.attempts > 1:
            log.info("database reachable again; schema at head", extra={"attempts": self.attempts})
        return True

    def _keep_trying(self) -> None:
        delay = self.retry_seconds
        while not self.stop.wait(delay):
            try:
                if self._attempt():
                    return
            except Exception:  # not the database being away (e.g. a revision this build lacks)
                log.exception("could not bring the schema to head; not retrying")
                self.failed.set()
                return
            log.warning("database still unreachable", extra={"error": self.last_error})
            delay = min(delay * 2, self.max_retry_seconds)
