"""Injection attempts against every API parameter and header: a 422 or a correct (empty) result,
never a 5xx, never database error text."""

from __future__ import annotations

import re
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


@pytest.fixture
def client(make_settings: Callable[..., Settings], engine: Engine) -> Iterator[TestClient]:
    with FakeUpstream(coins(10)) as upstream:
        settings = make_settings(
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            top_n=10,
            admin_api_key="admin-key-for-tests",
        )
        run_pass(settings, engine, sources=["coinpaprika", "coingecko"])
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
                continue  # the HTTP client refuses to send these; the server never sees them
            value = payload.encode("ascii", "replace").decode()
            for path in ("/data", "/health", "/runs", "/"):
                _check(client.get(path, headers={header: value}), f"{header}={payload!r} {path}")
