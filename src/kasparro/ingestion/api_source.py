"""HttpIngestion: a BaseIngestion whose records come from a rate-limited, retried JSON API."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine

from kasparro.config import Settings
from kasparro.ingestion.base import BaseIngestion
from kasparro.ingestion.http import SourceClient


class HttpIngestion(BaseIngestion):
    """Sources set ``base_url``, ``headers`` and ``min_interval`` from settings, then use ``self.client``."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        stop: threading.Event | None = None,
        progress: Any = None,
        transport: Any = None,
    ) -> None:
        super().__init__(settings, engine, stop=stop, progress=progress)
        self.client = SourceClient(
            base_url=self.base_url(),
            headers=self.headers(),
            timeout=settings.http_timeout,
            min_interval=self.min_interval(),
            attempts=settings.retry_attempts,
            min_wait=settings.retry_min_wait,
            max_wait=settings.retry_max_wait,
            retry_after_cap=settings.retry_after_cap,
            stop=self.stop,
            transport=transport,
            before_request=self.commit_before_waiting,
        )

    def base_url(self) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {}

    def min_interval(self) -> float:
        return 0.0

    def close(self) -> None:
        self.requests = self.client.requests
        self.retries = self.client.retries
        self.client.close()
