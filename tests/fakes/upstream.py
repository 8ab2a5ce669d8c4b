"""A local fake of the CoinPaprika and CoinGecko HTTP APIs, with request log, scripted faults and limits."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes import data
from tests.fakes.faults import (
    CLOUDFLARE_HTML,
    FLAP_FAULTS,
    SOURCES,
    Fault,
    Row,
    SlidingWindow,
    error_body,
)
from tests.fakes.server import Handler, LocalServer

GECKO_CACHE = ("Cache-Control", "max-age=30, public, must-revalidate, s-maxage=30")
_GECKO_ORDERS: dict[str, tuple[str, bool]] = {
    "market_cap_desc": ("market_cap", True), "market_cap_asc": ("market_cap", False),
    "volume_desc": ("total_volume", True), "volume_asc": ("total_volume", False),
    "id_desc": ("id", True), "id_asc": ("id", False),
}  # fmt: skip
_ROUTES = {
    "/v1/tickers": "coinpaprika.tickers",
    "/api/v3/ping": "coingecko.ping",
    "/api/v3/coins/markets": "coingecko.markets",
}


@dataclass
class RequestRecord:
    """One request as the fake saw it, and how it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    source: str  # coinpaprika | coingecko
    route: str  # e.g. coingecko.markets
    at: float  # time.monotonic() at arrival
    received_at: datetime
    status: int | None = None  # None: no response was sent
    fault: str | None = None


def _route(path: str) -> tuple[str, str]:
    source = "coinpaprika" if path.startswith("/v1/") else "coingecko"
    if path.startswith("/v1/tickers/"):
        return source, "coinpaprika.ticker"
    return source, _ROUTES.get(path, f"{source}.unknown")


def _json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class FakeUpstream:
    """Both APIs on one ephemeral 127.0.0.1 port: ``/v1/...`` is CoinPaprika, ``/api/v3/...`` CoinGecko.

    ``paprika_rows`` / ``gecko_rows`` are plain lists tests may replace or edit at any time. Only USD
    is served (``quotes=USD``, ``vs_currency=usd``); other currencies get the documented 400.
    Per request, in order: a queued ``inject`` fault, else the rate limit, else flapping, else normal.
    """

    def __init__(
        self,
        coins: list[data.WorldCoin] | None = None,
        *,
        free_plan: bool = False,
        latency: tuple[float, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.paprika_rows: list[Row] = []
        self.gecko_rows: list[Row] = []
        self.set_coins(data.coins(25) if coins is None else coins, free_plan=free_plan)
        self.latency = latency
        self.log: list[RequestRecord] = []
        self.faults: dict[str, deque[Fault]] = {s: deque() for s in SOURCES}
        self.requests_by_route: Counter[str] = Counter()
        self.served_429: Counter[str] = Counter()
        self._limits: dict[str, SlidingWindow | None] = dict.fromkeys(SOURCES)
        self._flap: tuple[float, tuple[Fault, ...]] | None = None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: LocalServer | None = None
        # per source: answers still let through before the gate, and the gate
        self._holds: dict[str, tuple[int, threading.Event]] = {}
        self._held: Counter[str] = Counter()

    # --- data and behaviour knobs ----------------------------------------------------------
    def set_coins(self, coins: list[data.WorldCoin], *, free_plan: bool = False) -> None:
        """Serve these world coins from both APIs (``free_plan`` drops Paprika's circulating supply)."""
        self.paprika_rows = [data.coinpaprika_ticker(c, free_plan=free_plan) for c in coins]
        self.gecko_rows = [data.coingecko_market(c) for c in coins]

    def inject(self, source: str, *faults: Fault) -> None:
        """Queue faults for ``source``; each is consumed by the next request to it, in order."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        with self._lock:
            self.faults[source].extend(faults)

    def flap(self, rate: float = 0.3, seed: int = 0, faults: Iterable[Fault] = FLAP_FAULTS) -> None:
        """Fail about ``rate`` of all requests with a random fault; ``rate=0`` stops flapping."""
        with self._lock:
            self._rng = random.Random(seed)
            self._flap = (rate, tuple(faults)) if rate > 0 else None

    def enforce_limits(
        self, paprika_per_second: int | None = 10, gecko_per_minute: int | None = 30
    ) -> None:
        """Answer 429 past these sliding-window limits (None: unlimited); CoinGecko adds Retry-After."""
        with self._lock:
            self._limits["coinpaprika"] = (
                SlidingWindow(paprika_per_second, 1.0) if paprika_per_second else None
            )
            self._limits["coingecko"] = (
                SlidingWindow(gecko_per_minute, 60.0) if gecko_per_minute else None
            )

    def hold(self, source: str, *, after: int = 0) -> None:
        """Answer the next ``after`` requests to ``source``, then keep every later one waiting
        (received, no response) until ``release`` or ``stop``: a run provably in flight."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        with self._lock:
            self._holds[source] = (after, threading.Event())

    def release(self, source: str) -> None:
        """Answer the requests ``hold`` kept waiting, and every later one, normally."""
        with self._lock:
            hold = self._holds.pop(source, None)
        if hold is not None:
            hold[1].set()

    def held(self, source: str) -> int:
        """How many requests to ``source`` are waiting at the gate now."""
        with self._lock:
            return self._held[source]

    def requests(self, source: str | None = None, route: str | None = None) -> list[RequestRecord]:
        """Logged requests, optionally only one source's or one route's."""
        with self._lock:
            return [r for r in self.log if source in (None, r.source) and route in (None, r.route)]

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeUpstream is not started")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def coinpaprika_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def coingecko_url(self) -> str:
        return f"{self.base_url}/api/v3"

    def start(self) -> FakeUpstream:
        self._server = LocalServer(self._dispatch)
        self._server.start()
        return self

    def stop(self) -> None:
        with self._lock:
            held = list(self._holds)
        for source in held:
            self.release(source)
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- request handling ------------------------------------------------------------------
    def _dispatch(self, handler: Handler) -> None:
        parts = urlsplit(handler.path)
        source, route = _route(parts.path)
        record = RequestRecord(
            method=handler.command, path=parts.path, query=dict(parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in handler.headers.items()}, source=source, route=route,
            at=time.monotonic(), received_at=datetime.now(UTC),
        )  # fmt: skip
        with self._lock:
            self.log.append(record)
            self.requests_by_route[route] += 1
            fault = self.faults[source].popleft() if self.faults[source] else None
            window = self._limits[source]
            wait = window.admit(record.at) if fault is None and window is not None else 0
            if wait:
                retry = (("Retry-After", str(wait)),) if source == "coingecko" else ()
                fault = Fault("http", 429, None, retry)
            elif fault is None and self._flap and self._rng.random() < self._flap[0]:
                fault = self._rng.choice(self._flap[1])
            delay = self._rng.uniform(*self.latency) if self.latency else 0.0
            gate = self._gate(source)
        stopping = handler.server.stopping
        if gate is not None:
            gate.wait()
            with self._lock:
                self._held[source] -= 1
        if delay:
            stopping.wait(delay)
        if fault is not None and fault.kind == "timeout":
            stopping.wait(fault.delay)
        record.fault = None if fault is None else fault.kind
        try:
            record.status = self._answer(handler, record, fault)
        except OSError:
            handler.close_connection = True  # the client went away (e.g. it timed out first)
        if record.status == 429:
            with self._lock:
                self.served_429[source] += 1

    def _gate(self, source: str) -> threading.Event | None:
        """The gate this request waits at, counted as held (the caller holds the lock)."""
        hold = self._holds.get(source)
        if hold is None:
            return None
        after, gate = hold
        if after > 0:
            self._holds[source] = (after - 1, gate)
            return None
        self._held[source] += 1
        return gate

    def _answer(self, handler: Handler, record: RequestRecord, fault: Fault | None) -> int | None:
        kind = "normal" if fault is None else fault.kind
        if fault is not None and kind in ("reset", "close"):
            handler.drop(rst=kind == "reset")
            return None
        if fault is not None and kind == "html":
            page = CLOUDFLARE_HTML.format(status=fault.status).encode()
            handler.reply(
                fault.status, page, "text/html; charset=UTF-8", [("Server", "cloudflare")]
            )
            return fault.status
        if fault is not None and kind == "http":
            body = fault.body if fault.body is not None else error_body(record.source, fault.status)
            payload = body.encode() if isinstance(body, str) else _json(body)
            handler.reply(fault.status, payload, "application/json; charset=utf-8", fault.headers)
            return fault.status
        status, body = self._normal(record)
        if status == 200 and kind == "empty" and isinstance(body, list):
            body = []
        if status == 200 and fault is not None and fault.mutate is not None:
            rows = [fault.mutate(r) for r in (body if isinstance(body, list) else [body])]
            kept = [r for r in rows if r is not None]
            body = kept if isinstance(body, list) else (kept[0] if kept else {})
        if isinstance(body, str):
            handler.reply(status, body.encode(), "text/plain; charset=utf-8")
            return status
        payload = _json(body)
        if kind == "truncated":
            payload = payload[: max(1, len(payload) // 2)]
        extra = [GECKO_CACHE] if record.source == "coingecko" else []
        handler.reply(status, payload, "application/json; charset=utf-8", extra)
        return status

    def _normal(self, record: RequestRecord) -> tuple[int, Any]:
        route = record.route
        if route in ("coinpaprika.tickers", "coinpaprika.ticker"):
            return self._tickers(record)
        if route == "coingecko.ping":
            return 200, {"gecko_says": "(V3) To the Moon!"}
        if route == "coingecko.markets":
            return self._markets(record.query)
        if record.source == "coinpaprika":
            return 404, "404 page not found"
        return 404, {"error": "Not Found"}

    def _tickers(self, record: RequestRecord) -> tuple[int, Any]:
        quotes = [c.strip().upper() for c in record.query.get("quotes", "USD").split(",")]
        if len(quotes) > 3:
            return 400, {"error": "Max number of quotes is 3"}
        if quotes != ["USD"]:
            return 400, {"error": "Invalid parameters"}
        rows = list(self.paprika_rows)
        if record.route == "coinpaprika.tickers":
            return 200, rows
        wanted = record.path.removeprefix("/v1/tickers/")
        found = [r for r in rows if r.get("id") == wanted]
        return (200, found[0]) if found else (404, {"error": "id not found"})

    def _markets(self, q: dict[str, str]) -> tuple[int, Any]:
        if q.get("vs_currency", "").lower() != "usd":
            return 400, {"error": "invalid vs_currency"}
        try:
            per_page = min(max(int(q.get("per_page", "100")), 1), 250)
            page = max(int(q.get("page", "1")), 1)
        except ValueError:
            return 400, {"error": "invalid page or per_page"}
        rows = list(self.gecko_rows)
        if "ids" in q:
            wanted = {i.strip() for i in q["ids"].split(",")}
            rows = [r for r in rows if r.get("id") in wanted]
        key, reverse = _GECKO_ORDERS.get(q.get("order", ""), _GECKO_ORDERS["market_cap_desc"])
        present = [r for r in rows if r.get(key) is not None]
        with contextlib.suppress(TypeError):  # a mutated field of the wrong type: keep row order
            present.sort(key=lambda r: r[key], reverse=reverse)
        rows = present + [r for r in rows if r.get(key) is None]
        return 200, rows[(page - 1) * per_page : page * per_page]
