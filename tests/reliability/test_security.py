"""Security: no secret in any log line, response or error; CORS; admin key; rate limiter; non-root
container; ruff's ``S`` rules."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import logging
import re
import subprocess
import sys
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote, quote_plus

import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from starlette.exceptions import StarletteDeprecationWarning

from kasparro.api import create_app, trigger
from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.observability.logging import configure_logging_for
from kasparro.pipeline.runner import run_pass
from tests.conftest import reset_postgres
from tests.fakes import FakeUpstream, Fault, coins
from tests.reliability.helpers import cli_env, kasparro, settings_for
from tests.reliability.live_server import serving

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
GECKO_KEY = "sk-test-SECRET-gecko-7f3a9c"
ADMIN_KEY = "sk-test-SECRET-admin-9d8e"
DB_PASSWORD = "pw-SECRET-db-5566"
# characters a URL must percent-encode and JSON must escape
AWKWARD_PASSWORD = 'pw-SECRET-db/@:%"7788'
ENDPOINTS = [
    "/",
    "/health",
    "/health/live",
    "/data",
    "/stats",
    "/runs",
    "/assets",
    "/drift",
    "/metrics",
    "/openapi.json",
    "/nope",
]


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(arg) for arg in get_args(annotation))


SECRET_FIELDS = sorted(n for n, f in Settings.model_fields.items() if _is_secret(f.annotation))
DATABASE_URL_FIELDS = sorted(
    n for n in Settings.model_fields if re.fullmatch(r"database\w*_url", n)
)


def _planted(name: str) -> str:
    """A distinct secret for the SecretStr setting ``name`` (URL-shaped for a URL setting)."""
    secret = f"sk-test-SECRET-{name.replace('_', '-')}-4e1b"
    return f"redis://:{secret}@127.0.0.1:9/0" if name.endswith("_url") else secret


def _written_forms(secret: str) -> set[str]:
    """The secret as written, URL-encoded, and escaped inside a JSON string."""
    return {secret, quote(secret, safe=""), quote_plus(secret), orjson.dumps(secret).decode()[1:-1]}


@pytest.fixture
def database_with_password(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied, as a URL carrying ``DB_PASSWORD`` (the local
    server trusts the connection, so the password is sent but never checked)."""
    reset_postgres(postgres_url)
    url = make_url(postgres_url).set(password=DB_PASSWORD)
    return url.render_as_string(hide_password=False)


def test_the_secret_settings_are_discovered() -> None:
    assert {"admin_api_key", "coingecko_api_key", "coinpaprika_api_key"} <= set(SECRET_FIELDS)
    assert "database_url" in DATABASE_URL_FIELDS


@pytest.mark.postgres
def test_secrets_appear_in_no_log_line_response_or_error(
    database_with_password: str, tmp_path: Path
) -> None:
    """Every SecretStr setting and the database password, with logging set up by the production
    wiring (``configure_logging_for``): none of them in any log line, response, run error or repr."""
    planted = {name: _planted(name) for name in SECRET_FIELDS} | {
        "coingecko_api_key": GECKO_KEY,
        "admin_api_key": ADMIN_KEY,
    }
    stream = io.StringIO()
    with FakeUpstream(coins(5)) as upstream:
        settings = settings_for(
            database_with_password,
            tmp_path,
            coinpaprika_base_url=upstream.coinpaprika_url,
            coingecko_base_url=upstream.coingecko_url,
            top_n=5,
            **dict.fromkeys(DATABASE_URL_FIELDS, database_with_password),
            **planted,
        )
        configure_logging_for(settings.model_copy(update={"log_level": "DEBUG"}), stream=stream)
        try:
            engine = make_engine(settings.database_url)
            # failures echo what they can: upstream error bodies, retries, fatal 401/403
            upstream.inject("coingecko", Fault.http(500), Fault.http(401))
            upstream.inject("coinpaprika", Fault.http(403))
            results = run_pass(settings, engine) + run_pass(settings, engine)
            keys_sent = {r.headers.get("x-cg-demo-api-key") for r in upstream.requests("coingecko")}
            with TestClient(create_app(settings), raise_server_exceptions=False) as client:
                bodies = [client.get(path).text for path in ENDPOINTS]
                bodies += [client.get("/data", params={"limit": "x"}).text]
                for key in (None, "wrong", ADMIN_KEY[:-1]):
                    headers = {"X-API-Key": key} if key else {}
                    response = client.post("/runs", headers=headers)
                    bodies.append(response.text + str(dict(response.headers)))
                bodies.append(client.get("/runs").text)
            # a line that quotes every secret outright, as a careless error message would
            log = logging.getLogger("kasparro.security_test")
            log.error("settings were %s", " ".join(settings.secret_values()))
            try:
                raise RuntimeError(f"could not connect to {settings.database_url}")
            except RuntimeError:
                log.exception("connection failed")
            engine.dispose()
        finally:
            logging.getLogger().handlers.clear()

    secrets = [*planted.values(), DB_PASSWORD]
    assert keys_sent == {GECKO_KEY}  # the key really was in play
    assert set(secrets) <= set(settings.secret_values())  # nothing escapes the production scrubbers
    texts = {
        "log": stream.getvalue(),
        **{f"response {i}": body for i, body in enumerate(bodies)},
        **{f"run error {r.source}": r.error or "" for r in results},
        "repr": repr(settings),
        "masked": str(settings.masked()),
    }
    assert "connection failed" in texts["log"]
    leaks = [
        (where, secret)
        for secret in secrets
        for form in _written_forms(secret)
        for where, text in texts.items()
        if form in text
    ]
    assert leaks == []


def test_the_settings_repr_hides_the_database_password() -> None:
    settings = Settings(database_url=f"postgresql+psycopg://kasparro:{DB_PASSWORD}@db/kasparro")
    assert DB_PASSWORD not in repr(settings)
    assert DB_PASSWORD not in str(settings)
    assert "postgresql+psycopg://kasparro:***@db/kasparro" in repr(settings)


def test_log_lines_hide_encoded_forms_of_a_secret() -> None:
    url = make_url("postgresql+psycopg://kasparro@db/kasparro").set(password=AWKWARD_PASSWORD)
    settings = Settings(database_url=url.render_as_string(hide_password=False))
    stream = io.StringIO()
    configure_logging_for(settings, stream=stream)
    try:
        log = logging.getLogger("kasparro.security_test")
        log.error("password %s", AWKWARD_PASSWORD)
        log.error("could not connect to %s", settings.database_url)
    finally:
        logging.getLogger().handlers.clear()
    written = stream.getvalue()
    assert "could not connect" in written
    assert [form for form in _written_forms(AWKWARD_PASSWORD) if form in written] == []


def test_cli_errors_and_config_show_do_not_reveal_the_database_password(tmp_path: Path) -> None:
    password = "pw-SECRET-5566"
    env = cli_env(settings_for("sqlite:///unused.db", tmp_path)) | {
        "KASPARRO_DATABASE_URL": f"postgresql+psycopg://kasparro:{password}@127.0.0.1:9/kasparro",
        "KASPARRO_ADMIN_API_KEY": ADMIN_KEY,
        "KASPARRO_COINGECKO_API_KEY": GECKO_KEY,
        "KASPARRO_LOG_LEVEL": "DEBUG",
    }
    outputs = [
        kasparro(*args, env=env, timeout=60)
        for args in (["etl", "run"], ["config", "show"], ["db", "verify"])
    ]
    for done in outputs:
        for secret in (password, ADMIN_KEY, GECKO_KEY):
            assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("https://evil.example", False),
        ("null", False),
        ("http://localhost:3000.evil.example", False),
    ],
)
def test_cors_rejects_origins_that_are_not_allowed(
    make_settings: Callable[..., Settings], origin: str, allowed: bool
) -> None:
    with TestClient(create_app(make_settings())) as client:
        simple = client.get("/health/live", headers={"Origin": origin})
        preflight = client.options(
            "/data", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
        )
    assert (simple.headers.get("access-control-allow-origin") == origin) is allowed
    assert (preflight.status_code == 200) is allowed
    assert simple.headers.get("access-control-allow-origin") != "*"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-API-Key": ""}, 401), ({"X-API-Key": "wrong"}, 403), ({"X-API-Key": ADMIN_KEY + "x"}, 403),
     ({"X-API-Key": ADMIN_KEY.upper()}, 403), ({"X-API-Key": ADMIN_KEY[:-1]}, 403)],
)  # fmt: skip
def test_admin_endpoint_rejects_missing_and_wrong_keys(
    make_settings: Callable[..., Settings], headers: dict[str, str], status: int
) -> None:
    with TestClient(create_app(make_settings(admin_api_key=ADMIN_KEY))) as client:
        response = client.post("/runs", headers=headers)
    assert response.status_code == status
    assert ADMIN_KEY not in response.text


def test_admin_key_is_compared_in_constant_time() -> None:
    tree = ast.parse(textwrap.dedent(inspect.getsource(trigger.RunTrigger)))
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    compares = [
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Compare) and any(isinstance(o, ast.Eq | ast.NotEq) for o in n.ops)
    ]
    assert "hmac.compare_digest" in calls
    assert not [c for c in compares if "given" in c or "key" in c.lower()]  # no == on the key


def test_rate_limiter_holds_under_a_concurrent_burst(
    make_settings: Callable[..., Settings],
) -> None:
    """``burst`` requests from one client in flight at once against a real server: exactly the
    bucket's ``limit`` pass (plus what refills while the burst lasts), every other one is a 429
    with ``Retry-After``."""
    limit, burst = 20, 120

    async def fire(port: int) -> tuple[list[httpx.Response], float, int]:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            limits=httpx.Limits(max_connections=burst),
            timeout=30,
        ) as client:
            started = time.monotonic()
            responses = await asyncio.gather(*(client.get("/") for _ in range(burst)))
            elapsed = time.monotonic() - started
            exempt = await client.get("/health/live")
        return list(responses), elapsed, exempt.status_code

    app = create_app(make_settings(rate_limit_per_minute=limit))
    with serving(app) as port:
        responses, elapsed, exempt = asyncio.run(fire(port))
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (a local proxy), so spoofing is tried
    # in-process, from a client that is no trusted proxy and has spent its own bucket
    with TestClient(app) as client:
        assert {client.get("/").status_code for _ in range(limit)} == {200}
        spoofed = client.get("/", headers={"X-Forwarded-For": "203.0.113.9"}).status_code

    statuses = Counter(r.status_code for r in responses)
    refilled = int(elapsed * limit / 60)
    print(f"burst of {burst}: {dict(statuses)} in {elapsed:.2f} s (tokens refilled: {refilled})")
    assert limit <= statuses[200] <= limit + refilled, statuses
    assert statuses[429] == burst - statuses[200], statuses
    for response in responses:
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 60 // limit
            assert response.json()["error"]["code"] == "rate_limited"
    assert spoofed == 429  # a spoofed X-Forwarded-For does not buy a fresh bucket
    assert exempt == 200  # the liveness probe is never limited


def test_container_runs_as_non_root() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [ln.split(None, 1)[1].strip() for ln in lines if ln.upper().startswith("USER ")]
    assert users, "the Dockerfile has no USER line"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_ruff_security_rules_are_clean_on_src() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "S", "--no-cache", "src"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
