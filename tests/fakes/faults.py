"""Scripted upstream failures and row mutators for the fake upstream server."""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]
RowMutator = Callable[[Row], Row | None]
SOURCES = ("coinpaprika", "coingecko")
GECKO_429 = "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."
DEFAULT_BODIES: dict[tuple[str, int], Any] = {
    ("coinpaprika", 429): {"error": "you have reached maximum request limit"},
    ("coinpaprika", 402): {"error": "Free tier rate limit reached, or this endpoint requires a paid plan"},
    ("coinpaprika", 403): {"error": "invalid api key"},
    ("coinpaprika", 400): {"error": "Invalid parameters"},
    ("coingecko", 429): {"status": {"error_code": 429, "error_message": GECKO_429}},
    ("coingecko", 401): {"status": {"error_code": 10002, "error_message": "API Key Missing"}},
    ("coingecko", 400): {"status": {"error_code": 10011, "error_message": "Wrong key type. If using a Demo key, your root URL must be api.coingecko.com"}},
}  # fmt: skip
CLOUDFLARE_HTML = (
    "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head><body>"
    "<h1>Error {status}</h1><p>Sorry, you have been blocked (Ray ID: 90f5aa621f77f7a9)</p></body></html>"
)


@dataclass(frozen=True)
class Fault:
    """One scripted answer; build it with the class methods and queue it with ``FakeUpstream.inject``."""

    kind: str  # http | html | truncated | timeout | reset | close | empty | mutate
    status: int = 200
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    mutate: RowMutator | None = None

    @classmethod
    def http(cls, status: int, body: Any = None, *, retry_after: float | None = None) -> Fault:
        """An error status; ``body=None`` uses the source's documented error body."""
        headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
        return cls("http", status, body, headers)

    @classmethod
    def html(cls, status: int = 503) -> Fault:
        return cls("html", status)

    @classmethod
    def truncated(cls) -> Fault:
        """A 200 whose JSON body is cut in half (complete HTTP message, invalid JSON)."""
        return cls("truncated")

    @classmethod
    def timeout(cls, seconds: float = 30.0) -> Fault:
        """Answer normally but only after ``seconds`` (longer than the client's timeout)."""
        return cls("timeout", delay=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Abort the connection with a TCP RST and no response."""
        return cls("reset")

    @classmethod
    def close(cls) -> Fault:
        """Close the connection cleanly without any response."""
        return cls("close")

    @classmethod
    def empty(cls) -> Fault:
        return cls("empty")

    @classmethod
    def mutated(cls, mutate: RowMutator) -> Fault:
        """A normal response whose rows pass through ``mutate`` (return None to drop a row)."""
        return cls("mutate", mutate=mutate)


def drop_field(path: str) -> RowMutator:
    """Mutator removing a (dotted, e.g. ``quotes.USD.price``) field."""
    return lambda row: _edit(row, path, lambda parent, key: parent.pop(key, None))


def rename_field(path: str, new_name: str) -> RowMutator:
    return lambda row: _edit(
        row, path, lambda p, k: p.__setitem__(new_name, p.pop(k)) if k in p else None
    )


def set_field(path: str, value: Any) -> RowMutator:
    """Mutator setting a field, e.g. ``set_field("current_price", "96114.08")`` to change its type."""
    return lambda row: _edit(row, path, lambda parent, key: parent.__setitem__(key, value))


def _edit(row: Row, path: str, action: Callable[[dict[str, Any], str], object]) -> Row:
    row = copy.deepcopy(row)
    *parents, key = path.split(".")
    target: Any = row
    for part in parents:
        target = target.get(part) if isinstance(target, dict) else None
    if isinstance(target, dict):
        action(target, key)
    return row


FLAP_FAULTS = (Fault.http(429), Fault.http(500), Fault.html(503), Fault.truncated(), Fault.reset())


def error_body(source: str, status: int) -> Any:
    """The documented error body a source sends with ``status``."""
    return DEFAULT_BODIES.get((source, status), {"error": f"HTTP {status}"})


class SlidingWindow:
    """At most ``limit`` requests in any ``window`` seconds (not thread-safe; the caller locks)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.hits: deque[float] = deque()

    def admit(self, now: float) -> int:
        """0 if admitted (and counted), else the whole seconds until a slot frees."""
        while self.hits and self.hits[0] <= now - self.window:
            self.hits.popleft()
        if len(self.hits) >= self.limit:
            return max(1, math.ceil(self.hits[0] + self.window - now))
        self.hits.append(now)
        return 0
