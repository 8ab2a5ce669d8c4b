"""Response cache keyed by (path, normalized query, data state): in-process LRU or Redis."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Engine

from kasparro.db import queries

log = logging.getLogger("kasparro.api.cache")
REDIS_PREFIX = "kasparro:resp:"
REDIS_TTL_SECONDS = 3600


@dataclass(frozen=True)
class DataState:
    """What the served data looks like now: ``version`` for clients, ``token`` for cache keys."""

    version: int
    token: str


class DataVersionTracker:
    """Reads the data state at most every ``ttl`` seconds; safe to call from many threads."""

    #: Seconds a claimed refresh keeps others on the remembered state; past it, a claim whose
    #: request was cancelled before its thread ran is taken over.
    CLAIM_TIMEOUT = 5.0

    def __init__(self, engine: Engine, ttl: float) -> None:
        self.engine = engine
        self.ttl = ttl
        self._state: DataState | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._claimed_at = -math.inf

    def fresh(self) -> DataState | None:
        """The remembered state if still within the TTL, or while another request is already
        re-reading it (no stampede of identical reads when the TTL runs out under load)."""
        state = self._state
        if state is None:
            return None
        now = time.monotonic()
        if (
            now - self._read_at < self.ttl
            or self._refreshing.locked()
            or now - self._claimed_at < self.CLAIM_TIMEOUT
        ):
            return state
        return None

    def claim(self) -> bool:
        """Take the next refresh (from the event loop, before handing it to a thread): until
        :meth:`refresh_claimed` ends, :meth:`fresh` gives every other request the remembered
        state at once, instead of queueing them for threads that would only return it."""
        now = time.monotonic()
        if self._state is None or now - self._claimed_at < self.CLAIM_TIMEOUT:
            return False
        self._claimed_at = now
        return True

    def release_claim(self) -> None:
        self._claimed_at = -math.inf

    def refresh_claimed(self) -> DataState:
        """Re-read the state for the request holding the claim, and give the claim up."""
        try:
            with self._refreshing:
                return self._read()
        finally:
            self.release_claim()

    def observe(self, state: DataState) -> None:
        """Adopt a newer state that a request read in its own snapshot, so later cache hits are
        never labelled with an older version than a response this process already sent."""
        with self._lock:
            if self._state is None or state.version > self._state.version:
                self._state = state
                self._read_at = time.monotonic()

    def current(self) -> DataState:
        """The state, re-read from the database when the TTL has passed, by one request at a time;
        the others keep the previous state meanwhile (only the very first read makes them wait)."""
        state = self.fresh()
        if state is not None:
            return state
        with self._refreshing:
            state = self._state
            if state is not None and time.monotonic() - self._read_at < self.ttl:
                return state  # another request refreshed it while this one waited
            return self._read()

    def _read(self) -> DataState:
        with self.engine.connect() as conn:
            version, token = queries.read_data_state(conn=conn)
        read = DataState(version=version, token=token)
        with self._lock:
            if self._state is None or read.version >= self._state.version:
                self._state = read
            self._read_at = time.monotonic()
            return self._state


@dataclass(frozen=True)
class CachedBody:
    """A rendered body without its trailing ``,"meta":{...}}``, and the route template."""

    route: str
    prefix: bytes


class ResponseCache(Protocol):
    #: False when nothing is ever stored (an in-process cache of size 0).
    enabled: bool

    async def get(self, key: str) -> CachedBody | None: ...

    async def set(self, key: str, entry: CachedBody) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """An LRU of rendered bodies; touched only from the event loop, so it needs no lock."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.enabled = max_entries > 0
        self._entries: OrderedDict[str, CachedBody] = OrderedDict()

    async def get(self, key: str) -> CachedBody | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    async def set(self, key: str, entry: CachedBody) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """Bodies shared by every API replica through Redis; a Redis failure is a cache miss."""

    def __init__(self, url: str, *, ttl: int = REDIS_TTL_SECONDS) -> None:
        import redis.asyncio as aioredis

        self.ttl = ttl
        self.enabled = True
        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._warned_at = 0.0

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning(
                "redis cache unavailable; serving uncached",
                extra={"error_type": type(exc).__name__},
            )

    async def get(self, key: str) -> CachedBody | None:
        try:
            raw = await self._client.get(REDIS_PREFIX + key)
        except Exception as exc:  # any Redis failure degrades to a miss
            self._warn(exc)
            return None
        if not raw:
            return None
        route, _, prefix = bytes(raw).partition(b"\n")
        return CachedBody(route=route.decode(), prefix=prefix)

    async def set(self, key: str, entry: CachedBody) -> None:
        try:
            await self._client.set(
                REDIS_PREFIX + key, entry.route.encode() + b"\n" + entry.prefix, ex=self.ttl
            )
        except Exception as exc:
            self._warn(exc)

    async def close(self) -> None:
        await self._client.aclose()


def build_cache(*, redis_url: str | None, max_entries: int) -> ResponseCache:
    if redis_url:
        return RedisCache(redis_url)
    return MemoryCache(max_entries)


def normalize_query(query_string: bytes) -> str:
    """The query with parameters in a stable order, so ``?a=1&b=2`` and ``?b=2&a=1`` share an entry."""
    if not query_string:
        return ""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return urlencode(sorted(pairs))


def cache_key(path: str, query_string: bytes, token: str, extra: str = "") -> str:
    """A short digest of (data state, path, normalized query, extra); also the ETag's value."""
    material = f"{token}|{path}?{normalize_query(query_string)}|{extra}".encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def etag_for(key: str) -> str:
    """A weak ETag: bodies of equal data differ in ``meta`` (request id, latency)."""
    return f'W/"{key}"'


def etag_matches(if_none_match: str | None, key: str) -> bool:
    """Whether an ``If-None-Match`` list names ``key`` (weak comparison) or is ``*``."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith(("W/", "w/")):
            tag = tag[2:]
        if tag == f'"{key}"':
            return True
    return False


class TotalsCache:
    """Row counts per (data state, query), so walking pages counts the matches once per version.

    Used from the routes' worker threads, hence the lock; bounded like the response cache.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> int | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def set(self, key: tuple[str, ...], value: int) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
