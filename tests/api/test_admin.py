"""``POST /runs`` behind the admin key, and no secret ever appearing in a response."""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from kasparro.db.models import EtlRun
from tests.api.conftest import NOW, ClientFactory, Seeded, TestClient

ADMIN_KEY = "adm1n-key-for-tests"


class FakeRunPass:
    """Stands in for the pipeline's ``run_pass``: records calls, optionally blocks until released."""

    def __init__(self, *, block: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not block:
            self.release.set()

    def __call__(self, settings: Any, engine: Engine, **kwargs: Any) -> list[Any]:
        self.calls.append({"settings": settings, "engine": engine, **kwargs})
        self.entered.set()
        self.release.wait(10)
        return []


def _install(monkeypatch: pytest.MonkeyPatch, fake: FakeRunPass) -> None:
    try:
        module = importlib.import_module("kasparro.pipeline.runner")
    except ImportError:
        module = types.ModuleType("kasparro.pipeline.runner")
        monkeypatch.setitem(sys.modules, "kasparro.pipeline.runner", module)
    monkeypatch.setattr(module, "run_pass", fake, raising=False)


def _wait_idle(client: TestClient) -> None:
    thread = client.app.state.services.trigger._thread  # type: ignore[attr-defined]
    if thread is not None:
        thread.join(10)


@pytest.mark.parametrize(
    ("configured", "headers", "status", "code"),
    [
        (None, {"X-API-Key": ADMIN_KEY}, 404, "not_found"),
        ("", {"X-API-Key": ""}, 404, "not_found"),
        (ADMIN_KEY, {}, 401, "unauthorized"),
        (ADMIN_KEY, {"X-API-Key": ""}, 401, "unauthorized"),
        (ADMIN_KEY, {"X-API-Key": "wrong"}, 403, "forbidden"),
        (ADMIN_KEY, {"X-API-Key": ADMIN_KEY + "x"}, 403, "forbidden"),
    ],
)
def test_trigger_refused(
    make_client: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    fake = FakeRunPass()
    _install(monkeypatch, fake)
    client = make_client(admin_api_key=configured)
    response = client.post("/runs", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert ADMIN_KEY not in response.text
    assert fake.calls == []


def test_trigger_accepted_starts_one_background_pass(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRunPass(block=True)
    _install(monkeypatch, fake)
    client = make_client(admin_api_key=ADMIN_KEY)
    response = client.post(
        "/runs",
        headers={"X-API-Key": ADMIN_KEY, "X-Request-ID": "trig-1"},
        json={"sources": ["csv", "csv"]},
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["trigger"], body["sources"], body["request_id"]) == (
        "accepted",
        "api",
        ["csv"],
        "trig-1",
    )
    assert fake.entered.wait(5)
    busy = client.post("/runs", headers={"X-API-Key": ADMIN_KEY})
    assert busy.status_code == 409
    fake.release.set()
    _wait_idle(client)
    call = fake.calls[0]
    assert (call["sources"], call["trigger"]) == (["csv"], "api")
    assert isinstance(call["stop"], threading.Event)
    assert ADMIN_KEY not in response.text
    again = client.post("/runs", headers={"X-API-Key": ADMIN_KEY})
    assert again.status_code == 202
    assert again.json()["sources"] == ["coinpaprika", "coingecko", "csv"]
    _wait_idle(client)


@pytest.mark.parametrize(
    "body",
    [
        {"sources": ["coingecko"]},
        {"sources": ["binance"]},
        {"sources": "csv"},
        {"source": ["csv"]},  # misspelt: must not start a pass of every source
        {"sources": ["csv"], "extra": 1},
    ],
)
def test_trigger_rejects_sources_not_enabled(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    fake = FakeRunPass()
    _install(monkeypatch, fake)
    client = make_client(admin_api_key=ADMIN_KEY, sources=["csv"])
    response = client.post("/runs", headers={"X-API-Key": ADMIN_KEY}, json=body)
    assert response.status_code == 422
    assert fake.calls == []


def test_trigger_runs_the_real_pipeline(make_client: ClientFactory, engine: Engine) -> None:
    """Production wiring: the real ``run_pass`` records a run with trigger ``api``."""
    pytest.importorskip("kasparro.pipeline.runner")
    client = make_client(admin_api_key=ADMIN_KEY, retry_attempts=1)
    response = client.post(
        "/runs", headers={"X-API-Key": ADMIN_KEY}, json={"sources": ["coingecko"]}
    )
    assert response.status_code == 202
    _wait_idle(client)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(EtlRun.source, EtlRun.trigger, EtlRun.status)).all()
    assert [(r.source, r.trigger) for r in runs] == [("coingecko", "api")]
    assert runs[0].status != "running"


def test_no_secret_in_any_response(
    make_client: ClientFactory, engine: Engine, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "admin_api_key": ADMIN_KEY,
        "coingecko_api_key": "cg-very-secret-123",
        "coinpaprika_api_key": "cp-very-secret-456",
    }
    db_password = "db-very-secret-789"
    with engine.begin() as conn:
        conn.execute(
            sa.insert(EtlRun).values(
                source="coingecko",
                status="failed",
                trigger="api",
                started_at=NOW,
                error=f"401 for key cg-very-secret-123 at upstream; db {db_password}",
            )
        )
    _install(monkeypatch, FakeRunPass())
    # the reader URL only carries the password into the settings; the test engine does the reading
    reader = f"postgresql+psycopg://kasparro:{db_password}@127.0.0.1:1/unused"
    client = make_client(engine=engine, database_read_url=reader, **secrets)
    assert db_password in client.app.state.services.settings.secret_values()  # type: ignore[attr-defined]
    paths = [
        "/",
        "/health",
        "/data",
        "/stats",
        "/runs",
        "/runs/7",
        "/runs/compare?a=3&b=7",
        "/assets",
        "/assets/1",
        "/assets/1/history",
        "/drift",
        "/metrics",
        "/openapi.json",
        "/nope",
    ]
    responses = [client.get(p) for p in paths]
    responses.append(client.post("/runs", headers={"X-API-Key": ADMIN_KEY}))
    responses.append(client.post("/runs", headers={"X-API-Key": "wrong"}))
    _wait_idle(client)
    assert [r.status_code for r in responses] == [
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        404,
        202,
        403,
    ]
    for response in responses:
        for secret in [*secrets.values(), db_password]:
            assert secret not in response.text
            assert all(secret not in value for value in response.headers.values())
    assert "***" in client.get("/runs/7").json()["run"]["error"]
