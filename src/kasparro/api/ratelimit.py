"""Token buckets per client, kept in a bounded LRU so memory stays flat whatever the number of clients."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

MAX_CLIENTS = 50_000


class TokenBuckets:
    """``per_minute`` tokens a minute per key, bursts up to that many; safe to use from many threads.

    The least recently seen key is forgotten once more than ``max_keys`` are tracked; a forgotten
    client simply starts again with a full bucket.
    """

    def __init__(self, per_minute: int, *, max_keys: int = MAX_CLIENTS) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - last) * self.refill_per_second)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def _wait(self, tokens: float) -> float:
        return (1.0 - tokens) / self.refill_per_second

    def take(self, key: str) -> float:
        """Take a token: 0 if one was available, else the seconds until one will be."""
        now = time.monotonic()
        with self._lock:
            tokens = self._level(key, now)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0, now)
                return 0.0
            self._store(key, tokens, now)
            return self._wait(tokens)

    def blocked_for(self, key: str) -> float:
        """Seconds until ``key`` has a token again (0 if it has one), without taking it."""
        now = time.monotonic()
        with self._lock:
            if key not in self._buckets:
                return 0.0
            tokens = self._level(key, now)
            return 0.0 if tokens >= 1.0 else self._wait(tokens)

    def __len__(self) -> int:
        return len(self._buckets)
