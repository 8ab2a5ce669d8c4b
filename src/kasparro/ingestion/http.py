"""HTTP for the API sources: a rate limiter, failure classification and bounded retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from kasparro import __version__
from kasparro.exceptions import FatalSourceError, RetriableSourceError, SourceError
from kasparro.observability.logging import get_logger

log = get_logger(__name__)
_BODY_KEEP = 500


class RateLimiter:
    """Keeps at least ``min_interval`` seconds between the starts of consecutive requests."""

    def __init__(
        self,
        min_interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def acquire(self) -> float:
        """Block until a request may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_slot)
            self._next_slot = start + self.min_interval
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(response: httpx.Response) -> str:
    """The upstream's own error message when it sent one, else the start of the body."""
    text = response.text[:_BODY_KEEP]
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return " ".join(text.split())[:_BODY_KEEP]
    if isinstance(body, dict):
        status = body.get("status")
        if isinstance(status, dict) and status.get("error_message"):
            return str(status["error_message"])[:_BODY_KEEP]
        if body.get("error"):
            return str(body["error"])[:_BODY_KEEP]
    return text


def classify(response: httpx.Response) -> SourceError | None:
    """Turn a non-2xx response into the right error: 429 and 5xx retriable, other 4xx fatal."""
    status = response.status_code
    if status < 400:
        return None
    message = (
        f"HTTP {status} from {response.request.url.copy_with(query=None)}: {_error_text(response)}"
    )
    kwargs: dict[str, Any] = {"status_code": status, "body": response.text[:_BODY_KEEP]}
    if status == 429 or status >= 500:
        return RetriableSourceError(
            message, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs
        )
    return FatalSourceError(message, **kwargs)


class SourceClient:
    """A JSON client for one upstream: rate limited, retried with capped exponential backoff."""

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        min_interval: float,
        attempts: int,
        min_wait: float,
        max_wait: float,
        retry_after_cap: float,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
        before_request: Callable[[], None] | None = None,
    ) -> None:
        self.before_request = before_request
        self._client = httpx.Client(
            base_url=base_url,
            headers={
                "User-Agent": f"kasparro/{__version__}",
                "Accept": "application/json",
                **headers,
            },
            timeout=timeout,
            transport=transport,
        )
        self.limiter = RateLimiter(min_interval)
        self.attempts = attempts
        self._backoff = wait_exponential(multiplier=min_wait, min=min_wait, max=max_wait)
        self.retry_after_cap = retry_after_cap
        self.stop = stop or threading.Event()
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, SourceError) and error.retry_after is not None:
            return min(error.retry_after, self.retry_after_cap)
        return float(self._backoff(state))

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying upstream request",
            extra={
                "attempt": state.attempt_number,
                "wait_seconds": round(state.upcoming_sleep, 3),
                "error": str(error),
            },
        )

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON, retrying transient failures within the attempt budget."""
        if self.before_request is not None:
            self.before_request()
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetriableSourceError),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._get_once, path, params)

    def _get_once(self, path: str, params: Mapping[str, Any] | None) -> Any:
        if self.stop.is_set():
            raise FatalSourceError("stopped before the request was sent")
        self.limiter.acquire()
        self.requests += 1
        try:
            response = self._client.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise RetriableSourceError(f"timeout calling {path}: {exc.__class__.__name__}") from exc
        except httpx.TransportError as exc:
            raise RetriableSourceError(
                f"connection error calling {path}: {exc.__class__.__name__}: {exc}"
            ) from exc
        error = classify(response)
        if error is not None:
            raise error
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            kind = "an HTML page" if response.text.lstrip()[:1] == "<" else "malformed JSON"
            raise RetriableSourceError(
                f"{path} answered {response.status_code} with {kind}: {exc}",
                status_code=response.status_code,
                body=response.text[:_BODY_KEEP],
            ) from exc
