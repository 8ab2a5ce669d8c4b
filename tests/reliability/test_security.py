"""Security: no secret in any log line, response or error; CORS; admin key; rate limiter; non-root
container; ruff's ``S`` rules."""

from __future__ import annotations

import ast
import inspect
import io
import logging
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.exceptions import StarletteDeprecationWarning

from kasparro.api import create_app, trigger
from kasparro.config import Settings
from kasparro.observability.logging import configure_logging
from kasparro.pipeline.runner import run_pass
from tests.fakes import FakeUpstream, Fault, coins
from tests.reliability.helpers import cli_env, kasparro, settings_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
GECKO_KEY = "sk-test-SECRET-gecko-7f3a9c"
PAPRIKA_KEY = "sk-test-SECRET-paprika-1b2c"
ADMIN_KEY = "sk-test-SECRET-admin-9d8e"
SECRETS = (GECKO_KEY, PAPRIKA_KEY, ADMIN_KEY)
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


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", secrets=SECRETS, stream=stream)
    yield stream
    logging.getLogger().handlers.clear()


def _secret_settings(
    make_settings: Callable[..., Settings], upstream: FakeUpstream, **extra: object
) -> Settings:
    return make_settings(
        coinpaprika_base_url=upstream.coinpaprika_url,
        coingecko_base_url=upstream.coingecko_url,
        coingecko_api_key=GECKO_KEY,
        coinpaprika_api_key=PAPRIKA_KEY,
        admin_api_key=ADMIN_KEY,
        top_n=5,
        **extra,
    )


def test_secrets_appear_in_no_log_line_response_or_error(
    make_settings: Callable[..., Settings], engine: Engine, captured: io.StringIO
) -> None:
    with FakeUpstream(coins(5)) as upstream:
        settings = _secret_settings(make_settings, upstream)
        # failures echo what they can: upstream error bodies, retries, fatal 401/403
        upstream.inject("coingecko", Fault.http(500), Fault.http(401))
        upstream.inject("coinpaprika", Fault.http(403))
        results = run_pass(settings, engine)
        results += run_pass(settings, engine)
        keys_sent = {r.headers.get("x-cg-demo-api-key") for r in upstream.requests("coingecko")}
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            bodies = [client.get(path).text for path in ENDPOINTS]
            bodies += [client.get("/data", params={"limit": "x"}).text]
            for key in (None, "wrong", ADMIN_KEY[:-1]):
                headers = {"X-API-Key": key} if key else {}
                response = client.post("/runs", headers=headers)
                bodies.append(response.text + str(dict(response.headers)))
            bodies.append(client.get("/runs").text)

    assert keys_sent == {GECKO_KEY}  # the key really was in play
    texts = [
        captured.getvalue(),
        *bodies,
        *(r.error or "" for r in results),
        repr(settings),
        str(settings.masked()),
    ]
    for secret in SECRETS:
        assert not [t for t in texts if secret in t], secret


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


def test_rate_limiter_holds_under_a_burst(make_settings: Callable[..., Settings]) -> None:
    limit = 20
    with TestClient(create_app(make_settings(rate_limit_per_minute=limit))) as client:
        statuses = [client.get("/").status_code for _ in range(limit * 3)]
        other = client.get("/", headers={"X-Forwarded-For": "203.0.113.9"}).status_code
        exempt = client.get("/health/live").status_code
    assert 0 < statuses.count(200) <= limit + 1
    assert statuses.count(429) >= limit * 2 - 1
    assert set(statuses) <= {200, 429}
    assert other == 429  # a spoofed X-Forwarded-For does not buy a fresh bucket
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
