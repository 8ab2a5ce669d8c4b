"""Injection attempts against every API parameter, header and body field: a 422 or a correct
(empty) result, never a 5xx, never database error text, never an injected header in the answer.

Header payloads an HTTP client refuses to send (CR, LF, NUL, bytes above 127, bad header names)
go over a raw socket to a real uvicorn server, with each of its HTTP parsers.
"""

from __future__ import annotations

import contextlib
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine
from starlette.exceptions import StarletteDeprecationWarning

from kasparro.api import create_app
from kasparro.config import Settings
from kasparro.pipeline.runner import run_pass
from tests.fakes import FakeUpstream, coins
from tests.reliability.live_server import serving

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

PAYLOADS = [
    "' OR '1'='1", "1; DROP TABLE asset; --", "\" OR 1=1 --", "bitcoin' UNION SELECT * FROM etl_run --",
    "%' OR 1=1 --", "1)) OR ((1=1", "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "/etc/passwd\x00",
    "%00", "<script>alert(1)</script>", "${jndi:ldap://x}", "a" * 5000, "-1", "99999999999999999999999",
    "NaN", "1e309", "\u202e\u0000", "日本語", "BTC%0d%0aSet-Cookie: x=1", "x\r\nX-Injected: 1",
]  # fmt: skip
LEAKS = re.compile(
    r"syntax error|sqlite3?\.|psycopg|OperationalError|ProgrammingError|DataError|SELECT .* FROM|"
    r"Traceback|File \"/|no such (table|column)|unterminated|root:x:0",
    re.IGNORECASE,
)
HEADERS = [
    "X-Request-ID",
    "If-None-Match",
    "X-API-Key",
    "X-Forwarded-For",
    "Accept",
    "Origin",
    "User-Agent",
]


ADMIN_KEY = "admin-key-for-tests"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], engine: Engine) -> Settings:
    """Settings over a database holding one pass of both HTTP sources; the rate limiter is off."""
    with FakeUpstream(coins(10)) as upstream:
        loaded = make_settings(
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            top_n=10,
            admin_api_key=ADMIN_KEY,
            rate_limit_per_minute=0,
            # "csv" is a valid source name that is not enabled: a triggered run is refused with
            # a 422 by the handler itself, after the admin key check, and no pass starts
            sources=["coinpaprika", "coingecko"],
        )
        run_pass(loaded, engine, sources=["coinpaprika", "coingecko"])
    return loaded


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _targets(schema: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path template, parameter name or '') for every operation and its parameters."""
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post"):
                continue
            params = [p for p in operation.get("parameters", []) if p["in"] in ("query", "path")]
            found += [(method, path, p["name"]) for p in params] or [(method, path, "")]
    return found


def _check(response: Any, where: str) -> None:
    assert response.status_code < 500, (where, response.status_code, response.text[:300])
    assert response.status_code in (200, 202, 304, 400, 401, 403, 404, 409, 422, 429), where
    assert not LEAKS.search(response.text), (where, response.text[:300])
    for name, value in response.headers.items():
        assert not {"\n", "\r"} & set(value), where
        assert name.lower() != "x-injected", where


def test_injection_payloads_in_every_parameter_never_reach_the_database(client: TestClient) -> None:
    targets = _targets(client.get("/openapi.json").json())
    assert len(targets) >= 10
    checked = 0
    for method, template, name in targets:
        for payload in PAYLOADS:
            quoted = quote(payload, safe="")
            path = re.sub(r"\{[^}]+\}", lambda _m, q=quoted: q, template)
            params = {name: payload} if name and f"{{{name}}}" not in template else {}
            key = (
                payload.encode("ascii", "replace")
                .decode()
                .replace("\r", "")
                .replace("\n", "")
                .replace("\x00", "")
            )
            headers = {"X-API-Key": key} if method == "post" else {}
            response = client.request(method.upper(), path, params=params, headers=headers)
            _check(response, f"{method} {template} {name}={payload!r}")
            if response.status_code == 200 and name in (
                "symbol",
                "coin_id",
                "source",
                "asset",
                "q",
            ):
                body = response.json()
                assert not body.get("data"), (
                    template,
                    name,
                    payload,
                )  # the correct result is empty
            checked += 1
    assert checked >= 10 * len(PAYLOADS)


def test_injection_payloads_in_headers(client: TestClient) -> None:
    for header in HEADERS:
        for payload in PAYLOADS:
            if "\r" in payload or "\n" in payload or "\x00" in payload:
                continue  # httpx refuses to send these: test_raw_bytes_in_header_names_and_values
            value = payload.encode("ascii", "replace").decode()
            for path in ("/data", "/health", "/runs", "/"):
                _check(client.get(path, headers={header: value}), f"{header}={payload!r} {path}")


# --- the request body of POST /runs --------------------------------------------------------

BODIES: list[Any] = [
    *({"sources": [payload]} for payload in PAYLOADS),
    *({"sources": ["csv", payload]} for payload in PAYLOADS[:6]),
    {"sources": PAYLOADS[0]},
    {"sources": {"$ne": None}},
]


def test_injection_payloads_in_the_run_request_body(client: TestClient) -> None:
    """With the right admin key, an injected source name is a 422 and starts no pass."""
    runs_before = client.get("/runs").json()["pagination"]["total"]
    for body in BODIES:
        response = client.post("/runs", json=body, headers={"X-API-Key": ADMIN_KEY})
        where = f"POST /runs {body!r:.80}"
        _check(response, where)
        assert response.status_code == 422, where
    for raw in (b'{"sources": ["csv\x00"]}', b'{"sources": ["\xff\xfe"]}', b"[[[[" * 5000):
        response = client.post(
            "/runs",
            content=raw,
            headers={"X-API-Key": ADMIN_KEY, "Content-Type": "application/json"},
        )
        _check(response, f"POST /runs raw {raw[:40]!r}")
        assert response.status_code in (400, 422)
    assert client.get("/runs").json()["pagination"]["total"] == runs_before


# --- raw bytes in header names and values, over a socket to a real server -------------------

MARKER = "kasparro-injected"
RAW_VALUES: list[bytes] = [
    f"x\r\nX-Injected: {MARKER}".encode(),  # a second header line, as a client would see it
    f"x\r\nSet-Cookie: {MARKER}=1".encode(),
    f"x\nX-Injected: {MARKER}".encode(),  # bare LF
    f"x\rX-Injected: {MARKER}".encode(),  # bare CR
    b"x\x00" + MARKER.encode(),
    b"\x00",
    "caf\u00e9 \u00ff\u00fe".encode("latin-1"),
    "\u65e5\u672c".encode(),  # UTF-8 bytes, read as latin-1
    b"' OR '1'='1",
    b"\xc0\xaf../../etc/passwd",
    b"x\r\n " + MARKER.encode(),  # obsolete line folding
    b'W/"' + b"\xff" * 64 + b'"',
    b"a" * 20_000,  # over uvicorn's incomplete-request limit
]
RAW_NAMES: list[bytes] = [
    b"X-Bad\x00Name",
    b"X Space",
    b"X-Caf\xe9",
    b"If-None-Match ",  # whitespace before the colon
    b"X-\r\nX-Injected",
    b"",
]
HEADER_NAMES = [b"If-None-Match", b"X-API-Key", b"X-Request-ID", b"Origin", b"Authorization",
                b"X-Forwarded-For", b"Cookie", b"Content-Type"]  # fmt: skip
RAW_ROUTES = [("GET", "/"), ("GET", "/health"), ("GET", "/health/live"), ("GET", "/data?limit=2"),
              ("GET", "/assets/1"), ("GET", "/runs"), ("GET", "/drift"), ("GET", "/stats"),
              ("GET", "/metrics"), ("POST", "/runs")]  # fmt: skip


def raw_exchange(port: int, method: str, target: str, header: bytes) -> tuple[int | None, bytes]:
    """Send one request with ``header`` (a whole ``Name: value`` line) and read the answer to the
    end: its status (None when the server closed without answering) and raw bytes."""
    body = b'{"sources": ["csv"]}' if method == "POST" else b""
    # POST /runs gets past the admin key check unless the key is what is under attack
    auth = (
        b"" if header.lower().startswith(b"x-api-key") else f"X-API-Key: {ADMIN_KEY}\r\n".encode()
    )
    request = b"".join([
        f"{method} {target} HTTP/1.1\r\n".encode(), b"Host: 127.0.0.1\r\n", auth,
        header, b"\r\n", b"Connection: close\r\n", b"Content-Type: application/json\r\n",
        f"Content-Length: {len(body)}\r\n\r\n".encode(), body,
    ])  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    answer = b"".join(chunks)
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return (int(match.group(1)) if match else None), answer


def _check_raw(status: int | None, answer: bytes, where: str) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    header_names = {line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n")[1:]}
    assert status is None or status < 500, (where, answer[:300])
    assert not LEAKS.search(body.decode("latin-1")), (where, body[:300])
    assert not {b"x-injected", b"set-cookie"} & header_names, (where, head)
    assert MARKER.encode() not in head, (where, head)  # nothing injected is echoed in a header
    assert b"\n" not in head.replace(b"\r\n", b""), (where, head)


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_raw_bytes_in_header_names_and_values(settings: Settings, http: str) -> None:
    """CR/LF, NUL, latin-1 and malformed header lines on every route: 4xx or a normal answer."""
    lines = [name + b": " + value for name in HEADER_NAMES for value in RAW_VALUES]
    lines += [name + b": 1" for name in RAW_NAMES]
    outcomes: dict[int | None, int] = {}
    with serving(create_app(settings), http=http) as port:
        for method, target in RAW_ROUTES:
            for line in lines:
                status, answer = raw_exchange(port, method, target, line)
                _check_raw(status, answer, f"{http} {method} {target} {line[:60]!r}")
                outcomes[status] = outcomes.get(status, 0) + 1
        # the server still answers normally afterwards
        status, _ = raw_exchange(port, "GET", "/health/live", b"X-Probe: 1")
    assert status == 200
    assert sum(outcomes.values()) == len(RAW_ROUTES) * len(lines)
    assert {200, 400} <= set(outcomes), outcomes  # some lines are fine, some are refused
    print(f"{http}: {sum(outcomes.values())} raw requests, statuses {outcomes}")
