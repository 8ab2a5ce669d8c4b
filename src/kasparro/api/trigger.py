"""``POST /runs``: the admin-key check and one ETL pass at a time in a background thread."""

from __future__ import annotations

import hmac
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from kasparro.api.errors import ApiError
from kasparro.api.ratelimit import TokenBuckets
from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.observability.logging import log_context

log = logging.getLogger("kasparro.api.trigger")
RunPass = Callable[..., Any]
# failed admin-key checks a client may make per minute before it is answered 429
AUTH_FAILURES_PER_MINUTE = 10


class RunTrigger:
    """Owns the background pass started through the API and the writer engine it uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self.auth_failures = TokenBuckets(AUTH_FAILURES_PER_MINUTE)

    @property
    def enabled(self) -> bool:
        key = self.settings.admin_api_key
        return key is not None and bool(key.get_secret_value())

    def authorize(self, given: str | None, *, client: str = "unknown") -> None:
        """404 when disabled, 401 without a key, 403 with a wrong one (constant-time comparison),
        429 once ``client`` has failed more than ``AUTH_FAILURES_PER_MINUTE`` times a minute."""
        key = self.settings.admin_api_key
        if key is None or not key.get_secret_value():
            raise ApiError(
                404, "not_found", "triggering runs is disabled (KASPARRO_ADMIN_API_KEY is unset)"
            )
        wait = self.auth_failures.blocked_for(client)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "rate_limited",
                "too many failed API key attempts",
                details={"retry_after_seconds": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        try:
            self._check(given, key.get_secret_value())
        except ApiError:
            self.auth_failures.take(client)
            raise

    @staticmethod
    def _check(given: str | None, expected_key: str) -> None:
        if not given:
            raise ApiError(
                401,
                "unauthorized",
                "missing X-API-Key header",
                headers={"WWW-Authenticate": "X-API-Key"},
            )
        if not hmac.compare_digest(given.encode(), expected_key.encode()):
            raise ApiError(403, "forbidden", "invalid API key")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, run_pass: RunPass, *, sources: list[str], request_id: str) -> None:
        """Start ``run_pass`` in the background; 409 if the previous one is still running."""
        with self._lock:
            if self.running:
                raise ApiError(
                    409, "conflict", "an ETL pass started through the API is still running"
                )
            self._thread = threading.Thread(
                target=self._run,
                args=(run_pass, sources, request_id),
                name="kasparro-api-run",
                daemon=True,
            )
            self._thread.start()

    def _writer(self) -> Engine:
        if self._engine is None:
            s = self.settings
            self._engine = make_engine(
                s.database_url, pool_size=s.db_pool_size, pool_timeout=s.db_pool_timeout
            )
        return self._engine

    def _run(self, run_pass: RunPass, sources: list[str], request_id: str) -> None:
        with log_context(request_id=request_id, trigger="api"):
            try:
                results = run_pass(
                    self.settings, self._writer(), sources=sources, trigger="api", stop=self._stop
                )
                log.info("api-triggered pass finished", extra={"runs": len(results or [])})
            except Exception:
                log.exception("api-triggered pass failed")

    def shutdown(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()
