"""Settings: defaults, every documented variable honoured, invalid values named, keys and masking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from kasparro.config import (
    COINGECKO_PRO_URL,
    COINGECKO_PUBLIC_URL,
    COINPAPRIKA_FREE_URL,
    COINPAPRIKA_PRO_URL,
    Settings,
    load_settings,
)
from kasparro.exceptions import ConfigurationError


def test_defaults_match_the_documented_ones() -> None:
    settings = load_settings()
    assert settings.database_url.startswith("sqlite:///")
    assert "data/" in settings.database_url
    assert settings.sources == ["coinpaprika", "coingecko", "csv"]
    assert settings.top_n == 50
    assert settings.top_n_for("coingecko") == 50
    assert settings.top_n_for("coinpaprika") == 50
    assert settings.coinpaprika_min_interval == 0.1
    assert settings.coingecko_min_interval == 1.5
    assert settings.retry_attempts == 3
    assert (settings.retry_min_wait, settings.retry_max_wait) == (2.0, 10.0)
    assert settings.batch_size >= 500
    assert settings.coingecko_url == COINGECKO_PUBLIC_URL
    assert settings.coinpaprika_url == COINPAPRIKA_FREE_URL
    assert settings.coingecko_headers() == {}
    assert settings.coinpaprika_headers() == {}
    assert settings.secret_values() == []


# (variable, value, attribute read back, expected value)
ENV_CASES: list[tuple[str, str, str, Any]] = [
    ("KASPARRO_DATABASE_URL", "sqlite:////tmp/x.db", "database_url", "sqlite:////tmp/x.db"),
    (
        "KASPARRO_DATABASE_URL",
        "postgresql://u@h:5432/d",
        "database_url",
        "postgresql+psycopg://u@h:5432/d",
    ),
    ("KASPARRO_SOURCES", "csv", "sources", ["csv"]),
    ("KASPARRO_SOURCES", " CoinGecko , csv ,", "sources", ["coingecko", "csv"]),
    ("KASPARRO_TOP_N", "5000", "top_n", 5000),
    ("KASPARRO_COINGECKO_TOP_N", "300", "coingecko_top_n", 300),
    ("KASPARRO_COINPAPRIKA_TOP_N", "2500", "coinpaprika_top_n", 2500),
    ("KASPARRO_COINPAPRIKA_BASE_URL", "http://fake:1/v1/", "coinpaprika_url", "http://fake:1/v1"),
    (
        "KASPARRO_COINGECKO_BASE_URL",
        "http://fake:2/api/v3",
        "coingecko_url",
        "http://fake:2/api/v3",
    ),
    ("KASPARRO_COINGECKO_KEY_TYPE", "pro", "coingecko_key_type", "pro"),
    ("KASPARRO_COINPAPRIKA_MIN_INTERVAL", "0.25", "coinpaprika_min_interval", 0.25),
    ("KASPARRO_COINGECKO_MIN_INTERVAL", "2", "coingecko_min_interval", 2.0),
    ("KASPARRO_RETRY_ATTEMPTS", "7", "retry_attempts", 7),
    ("KASPARRO_RETRY_MIN_WAIT", "0.5", "retry_min_wait", 0.5),
    ("KASPARRO_RETRY_MAX_WAIT", "30", "retry_max_wait", 30.0),
    ("KASPARRO_HTTP_TIMEOUT", "3.5", "http_timeout", 3.5),
    ("KASPARRO_BATCH_SIZE", "777", "batch_size", 777),
    ("KASPARRO_COMMIT_INTERVAL", "0.5", "commit_interval", 0.5),
    ("KASPARRO_API_THREADS", "6", "api_threads", 6),
    ("KASPARRO_CSV_PATH", "/srv/prices.csv", "csv_path", Path("/srv/prices.csv")),
    ("KASPARRO_SCHEDULE", "*/5 * * * *", "schedule", "*/5 * * * *"),
]


@pytest.mark.parametrize(("variable", "value", "attribute", "expected"), ENV_CASES)
def test_every_documented_variable_is_honoured(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: Any
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), attribute) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KASPARRO_COINGECKO_API_KEY", "CG-demo-123"),
        ("KASPARRO_COINPAPRIKA_API_KEY", "paprika-secret"),
    ],
)
def test_api_key_variables_are_read_as_secrets(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    settings = load_settings()
    field = getattr(settings, variable.removeprefix("KASPARRO_").lower())
    assert isinstance(field, SecretStr)
    assert field.get_secret_value() == value
    assert value not in repr(settings)


def test_per_source_top_n_overrides_the_global_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASPARRO_TOP_N", "10")
    monkeypatch.setenv("KASPARRO_COINGECKO_TOP_N", "300")
    settings = load_settings()
    assert settings.top_n_for("coingecko") == 300
    assert settings.top_n_for("coinpaprika") == 10
    assert settings.top_n_for("csv") == 10


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KASPARRO_TOP_N": "abc"}, "KASPARRO_TOP_N"),
        ({"KASPARRO_TOP_N": "0"}, "KASPARRO_TOP_N"),
        ({"KASPARRO_SOURCES": "foo"}, "KASPARRO_SOURCES"),
        ({"KASPARRO_SOURCES": "csv,foo"}, "KASPARRO_SOURCES"),
        ({"KASPARRO_COINGECKO_KEY_TYPE": "free"}, "KASPARRO_COINGECKO_KEY_TYPE"),
        ({"KASPARRO_SCHEDULE": "nonsense"}, "KASPARRO_SCHEDULE"),
        ({"KASPARRO_RETRY_ATTEMPTS": "0"}, "KASPARRO_RETRY_ATTEMPTS"),
        ({"KASPARRO_HTTP_TIMEOUT": "0"}, "KASPARRO_HTTP_TIMEOUT"),
        ({"KASPARRO_BATCH_SIZE": "many"}, "KASPARRO_BATCH_SIZE"),
        ({"KASPARRO_COMMIT_INTERVAL": "-1"}, "KASPARRO_COMMIT_INTERVAL"),
        ({"KASPARRO_API_THREADS": "0"}, "KASPARRO_API_THREADS"),
        ({"KASPARRO_COINPAPRIKA_MIN_INTERVAL": "-1"}, "KASPARRO_COINPAPRIKA_MIN_INTERVAL"),
        ({"KASPARRO_DATABASE_URL": "mysql://x/y"}, "KASPARRO_DATABASE_URL"),
        (
            {"KASPARRO_RETRY_MIN_WAIT": "5", "KASPARRO_RETRY_MAX_WAIT": "1"},
            "KASPARRO_RETRY_MAX_WAIT",
        ),
    ],
)
def test_invalid_values_raise_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert named in str(caught.value)


def test_env_file_in_the_working_directory_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("KASPARRO_TOP_N=77\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_settings().top_n == 77


# (coingecko key, key type, expected url, expected headers)
GECKO_KEY_CASES: list[tuple[str | None, str, str, dict[str, str]]] = [
    ("CG-abc", "demo", COINGECKO_PUBLIC_URL, {"x-cg-demo-api-key": "CG-abc"}),
    ("CG-abc", "pro", COINGECKO_PRO_URL, {"x-cg-pro-api-key": "CG-abc"}),
    (None, "demo", COINGECKO_PUBLIC_URL, {}),
    (None, "pro", COINGECKO_PUBLIC_URL, {}),
    ("", "demo", COINGECKO_PUBLIC_URL, {}),
    ("", "pro", COINGECKO_PUBLIC_URL, {}),
]


@pytest.mark.parametrize(("key", "key_type", "url", "headers"), GECKO_KEY_CASES)
def test_coingecko_key_selects_host_and_header(
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
    key_type: str,
    url: str,
    headers: dict[str, str],
) -> None:
    if key is not None:
        monkeypatch.setenv("KASPARRO_COINGECKO_API_KEY", key)
    monkeypatch.setenv("KASPARRO_COINGECKO_KEY_TYPE", key_type)
    settings = load_settings()
    assert settings.coingecko_url == url
    assert settings.coingecko_headers() == headers


def test_coingecko_base_url_override_wins_over_the_key_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KASPARRO_COINGECKO_API_KEY", "CG-abc")
    monkeypatch.setenv("KASPARRO_COINGECKO_KEY_TYPE", "pro")
    monkeypatch.setenv("KASPARRO_COINGECKO_BASE_URL", "http://127.0.0.1:9999/api/v3")
    settings = load_settings()
    assert settings.coingecko_url == "http://127.0.0.1:9999/api/v3"
    assert settings.coingecko_headers() == {"x-cg-pro-api-key": "CG-abc"}


# (coinpaprika key, auth scheme, expected url, expected headers)
PAPRIKA_KEY_CASES: list[tuple[str | None, str, str, dict[str, str]]] = [
    ("pk-1", "raw", COINPAPRIKA_PRO_URL, {"Authorization": "pk-1"}),
    ("pk-1", "bearer", COINPAPRIKA_PRO_URL, {"Authorization": "Bearer pk-1"}),
    (None, "raw", COINPAPRIKA_FREE_URL, {}),
    ("", "bearer", COINPAPRIKA_FREE_URL, {}),
]


@pytest.mark.parametrize(("key", "scheme", "url", "headers"), PAPRIKA_KEY_CASES)
def test_coinpaprika_key_selects_host_and_authorization(
    monkeypatch: pytest.MonkeyPatch, key: str | None, scheme: str, url: str, headers: dict[str, str]
) -> None:
    if key is not None:
        monkeypatch.setenv("KASPARRO_COINPAPRIKA_API_KEY", key)
    monkeypatch.setenv("KASPARRO_COINPAPRIKA_AUTH_SCHEME", scheme)
    settings = load_settings()
    assert settings.coinpaprika_url == url
    assert settings.coinpaprika_headers() == headers


SECRETS = {
    "KASPARRO_COINGECKO_API_KEY": "gecko-secret-value",
    "KASPARRO_COINPAPRIKA_API_KEY": "paprika-secret-value",
    "KASPARRO_ADMIN_API_KEY": "admin-secret-value",
    "KASPARRO_REDIS_URL": "redis://:redis-secret-value@127.0.0.1:6379/0",
    "KASPARRO_DATABASE_URL": "postgresql+psycopg://kasparro:db-secret-value@db:5432/k",
    "KASPARRO_DATABASE_READ_URL": "postgresql+psycopg://reader:replica-secret-value@db2:5432/k",
}


def test_masked_never_contains_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    shown = repr(settings.masked())
    for needle in (
        "gecko-secret-value",
        "paprika-secret-value",
        "admin-secret-value",
        "redis-secret-value",
        "db-secret-value",
        "replica-secret-value",
    ):
        assert needle not in shown
    masked = settings.masked()
    assert masked["KASPARRO_COINGECKO_API_KEY"] == "**********"
    assert masked["KASPARRO_DATABASE_URL"].startswith("postgresql+psycopg://kasparro:")
    assert "db:5432/k" in masked["KASPARRO_DATABASE_URL"]
    assert masked["KASPARRO_TOP_N"] == 50
    assert masked["(effective coingecko url)"] == COINGECKO_PUBLIC_URL


def test_masked_shows_unset_secrets_as_empty() -> None:
    masked = load_settings().masked()
    assert masked["KASPARRO_COINGECKO_API_KEY"] is None
    assert masked["KASPARRO_DATABASE_URL"].startswith("sqlite:///")


def test_secret_values_lists_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    values = set(load_settings().secret_values())
    assert values == {
        "gecko-secret-value",
        "paprika-secret-value",
        "admin-secret-value",
        "redis://:redis-secret-value@127.0.0.1:6379/0",
        "db-secret-value",
        "replica-secret-value",
    }


def test_settings_can_be_built_directly_with_overrides() -> None:
    settings = Settings(top_n=3, sources=["csv"])
    assert settings.top_n_for("csv") == 3
    assert settings.sources == ["csv"]
