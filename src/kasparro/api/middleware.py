"""Pure-ASGI middleware: request id + access log + metrics, per-client rate limit, and the response cache."""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

import anyio
import anyio.to_thread
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kasparro.api.cache import (
    CachedBody,
    DataState,
    DataVersionTracker,
    ResponseCache,
    cache_key,
    etag_for,
    etag_matches,
)
from kasparro.api.context import (
    CACHE_KEY_KEY,
    CACHE_STORE_KEY,
    DATA_STATE_KEY,
    REKEY_KEY,
    REQUEST_ID_KEY,
    ROUTE_KEY,
    STARTED_KEY,
    route_template,
)
from kasparro.api.errors import error_body
from kasparro.api.ratelimit import TokenBuckets
from kasparro.observability.logging import log_context
from kasparro.observability.metrics import ApiMetrics

access_log = logging.getLogger("kasparro.api.access")
log = logging.getLogger("kasparro.api")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def splice_meta(prefix: bytes, *, request_id: str, started: float, version: int) -> bytes:
    """Close a cached body prefix with this request's ``meta``."""
    meta = {
        "request_id": request_id,
        "api_latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "data_version": version,
    }
    separator = b"," if len(prefix) > 1 else b""
    return prefix + separator + b'"meta":' + orjson.dumps(meta) + b"}"


class RequestContextMiddleware:
    """Gives every request an id, echoes it, logs one access line, records HTTP metrics, answers crashes."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = (
            given.decode("latin-1")
            if given and _VALID_REQUEST_ID.match(given.decode("latin-1"))
            else uuid.uuid4().hex
        )
        scope[REQUEST_ID_KEY] = request_id
        scope[STARTED_KEY] = started
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-request-id", request_id.encode()),
                    ],
                }
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled error", extra={"path": scope.get("path")})
                status = 500
                if not response_started:
                    body = error_body(
                        "internal_error", "an unexpected error occurred", request_id=request_id
                    )
                    headers = [
                        (b"content-type", b"application/json"),
                        (b"x-request-id", request_id.encode()),
                    ]
                    await _send_bytes(send, 500, body, headers)
            finally:
                self._record(scope, status, started, request_id)

    def _record(
        self, scope: MutableMapping[str, Any], status: int, started: float, request_id: str
    ) -> None:
        seconds = time.perf_counter() - started
        route = route_template(scope)
        method = str(scope.get("method", ""))
        self.metrics.observe(method=method, route=route, status=status, seconds=seconds)
        client = scope.get("client")
        access_log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "path": scope.get("path"),
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
                "client": client[0] if client else None,
            },
        )


class RateLimitMiddleware:
    """A token bucket per client address: ``per_minute`` requests a minute, bursts up to that many."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        exempt: tuple[str, ...] = ("/health/live", "/metrics"),
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute)
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.buckets.enabled or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = str(max(1, math.ceil(wait)))
        body = error_body(
            "rate_limited",
            f"rate limit of {int(self.buckets.capacity)} requests per minute exceeded",
            details={"retry_after_seconds": int(retry_after)},
            request_id=scope.get(REQUEST_ID_KEY),
        )
        await _send_bytes(
            send,
            429,
            body,
            [(b"content-type", b"application/json"), (b"retry-after", retry_after.encode())],
        )


class ResponseCacheMiddleware:
    """Serves cached GET bodies (and 304s) without entering the app; stores what the routes
    render. Identical requests that miss together are rendered once: the others wait for it."""

    #: Longest a request waits for another one rendering the same body before rendering its own.
    FOLLOW_TIMEOUT = 5.0

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: ResponseCache,
        tracker: DataVersionTracker,
        prefixes: tuple[str, ...],
        key_extra: Callable[[str, bytes], str] | None = None,
    ) -> None:
        self.app = app
        self.cache = cache
        self.tracker = tracker
        # keys whose response a request is computing now, so identical requests wait for it
        self._computing: dict[str, anyio.Event] = {}
        self._refresher = anyio.CapacityLimiter(1)
        self.prefixes = prefixes
        self.key_extra = key_extra

    async def _refreshed_state(self) -> DataState:
        """The data state once its TTL has run out: this request re-reads it, or, while another
        request is doing that, it gets the remembered state without waiting for a thread."""
        if self.tracker.claim():
            try:  # on a thread of its own: it must not queue behind the request handlers
                return await anyio.to_thread.run_sync(
                    self.tracker.refresh_claimed, limiter=self._refresher
                )
            except BaseException:
                self.tracker.release_claim()  # cancelled before its thread ran, or failed
                raise
        state = self.tracker.fresh()
        if state is not None:
            return state
        return await run_in_threadpool(self.tracker.current)  # the very first read: wait for it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        state = self.tracker.fresh()
        if state is None:
            try:
                state = await self._refreshed_state()
            except Exception:  # the route will meet the same failure and answer 503
                await self.app(scope, receive, send)
                return
        path, query = scope["path"], scope["query_string"]
        extra = self.key_extra(path, query) if self.key_extra else ""
        key = cache_key(path, query, state.token, extra)
        scope[DATA_STATE_KEY] = state
        scope[CACHE_KEY_KEY] = key
        scope[REKEY_KEY] = lambda token: cache_key(path, query, token, extra)
        headers = [(b"etag", etag_for(key).encode()), (b"cache-control", b"no-cache")]
        entry = await self.cache.get(key)
        computing = self._computing.get(key) if self.cache.enabled else None
        if entry is None and computing is not None:
            # the same body is being rendered for another request (the herd after each ETL
            # commit): wait for it in the event loop instead of rendering it again in a thread
            with anyio.move_on_after(self.FOLLOW_TIMEOUT):
                await computing.wait()
            entry = await self.cache.get(key)
        if entry is not None:
            scope[ROUTE_KEY] = entry.route
            given = _header(scope, b"if-none-match")
            if given is not None and etag_matches(given.decode("latin-1"), key):
                await _send_bytes(send, 304, b"", headers)
                return
            body = splice_meta(
                entry.prefix,
                request_id=scope[REQUEST_ID_KEY],
                started=scope[STARTED_KEY],
                version=state.version,
            )
            await _send_bytes(
                send,
                200,
                body,
                [(b"content-type", b"application/json"), (b"x-cache", b"hit"), *headers],
            )
            return

        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        leader = self.cache.enabled and key not in self._computing
        if leader:
            self._computing[key] = anyio.Event()
        try:
            await self.app(scope, receive, watch)
            prefix = scope.get(CACHE_STORE_KEY)
            if status in (200, 304) and isinstance(prefix, bytes):
                # the route may have re-keyed the entry to the data state its snapshot saw
                stored_key = scope.get(CACHE_KEY_KEY, key)
                entry = CachedBody(route=route_template(scope), prefix=prefix)
                await self.cache.set(stored_key, entry)
        finally:
            if leader:
                self._computing.pop(key).set()
