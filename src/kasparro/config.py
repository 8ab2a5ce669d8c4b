"""Settings, read once at the entry point from the environment (prefix ``KASPARRO_``) or ``.env``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kasparro.exceptions import ConfigurationError

ENV_PREFIX = "KASPARRO_"
KNOWN_SOURCES = ("coinpaprika", "coingecko", "csv")

COINGECKO_PUBLIC_URL = "https://api.coingecko.com/api/v3"
COINGECKO_PRO_URL = "https://pro-api.coingecko.com/api/v3"
COINPAPRIKA_FREE_URL = "https://api.coinpaprika.com/v1"
COINPAPRIKA_PRO_URL = "https://api-pro.coinpaprika.com/v1"

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob Kasparro has. Invalid values fail at start, naming the variable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # storage
    database_url: str = Field(
        "sqlite:///./data/kasparro.db", description="SQLAlchemy URL of the database."
    )
    database_read_url: str | None = Field(None, description="Optional read replica for the API.")
    db_pool_size: int = Field(10, ge=1, le=200)
    db_pool_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for a pooled connection before a 503."
    )

    # sources
    sources: CommaList = Field(default_factory=lambda: list(KNOWN_SOURCES))
    top_n: int = Field(50, ge=1, le=20_000)
    coingecko_top_n: int | None = Field(None, ge=1, le=20_000)
    coinpaprika_top_n: int | None = Field(None, ge=1, le=20_000)
    coinpaprika_base_url: str | None = None
    coingecko_base_url: str | None = None
    coingecko_api_key: SecretStr | None = None
    coingecko_key_type: Literal["demo", "pro"] = "demo"
    coinpaprika_api_key: SecretStr | None = None
    coinpaprika_auth_scheme: Literal["raw", "bearer"] = "raw"
    coinpaprika_min_interval: float = Field(0.1, ge=0)
    coingecko_min_interval: float = Field(1.5, ge=0)
    coingecko_per_page: int = Field(250, ge=1, le=250)
    retry_attempts: int = Field(3, ge=1, le=20)
    retry_min_wait: float = Field(2.0, ge=0)
    retry_max_wait: float = Field(10.0, ge=0)
    retry_after_cap: float = Field(
        60.0, ge=0, description="Longest Retry-After honoured, in seconds."
    )
    http_timeout: float = Field(10.0, gt=0)
    batch_size: int = Field(1000, ge=1, le=100_000)
    commit_interval: float = Field(
        2.0,
        ge=0,
        le=60,
        description=(
            "Seconds of batches one write transaction may span before it commits (0: commit "
            "every batch). A crash loses at most this much work plus one batch, which the next "
            "run redoes. HTTP sources also commit before each upstream request."
        ),
    )
    csv_path: Path = Path("./data/crypto.csv")
    sequential: bool = Field(
        False, description="Run sources one at a time instead of concurrently."
    )

    # scheduler and service
    schedule: str = Field(
        "6h", description="Interval such as 6h / 30m / 90s, or a 5-field cron expression."
    )
    backup_schedule: str | None = None
    backup_dir: Path = Path("./data/backups")
    backup_retention_days: int = Field(7, ge=1)
    breaker_failure_threshold: int = Field(3, ge=1)
    breaker_cooldown: float = Field(
        1800.0, ge=0, description="Seconds a tripped source is skipped."
    )
    stale_after: float | None = Field(
        None, gt=0, description="Seconds after which data is stale (default: twice the schedule)."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    http_keep_alive: int = Field(
        75,
        ge=1,
        le=3600,
        description=(
            "Seconds an idle keep-alive connection stays open. Longer than a load balancer's "
            "or client pool's idle timeout (60 s is common), so they never send a request on "
            "a connection the server is closing at that moment."
        ),
    )

    # API
    cors_origins: CommaList = Field(
        default_factory=lambda: [
            "http://localhost:3000",
            "http://127.0.0.1:3000",
            "http://localhost:8000",
            "http://127.0.0.1:8000",
        ]
    )
    admin_api_key: SecretStr | None = None
    redis_url: SecretStr | None = None
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests per client per minute; 0 turns the limiter off."
    )
    cache_max_entries: int = Field(2048, ge=0)
    api_threads: int = Field(
        2,
        ge=1,
        le=200,
        description=(
            "Request handlers one API process runs at once; more waiting requests queue. Few "
            "threads serve more: handlers are Python work, and threads contend for the GIL."
        ),
    )
    data_version_ttl: float = Field(
        0.5, ge=0, description="Seconds the API trusts its last read of the data version."
    )

    # logs
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("sources", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        names = [v.lower() for v in value]
        unknown = sorted(set(names) - set(KNOWN_SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; choose from {list(KNOWN_SOURCES)}")
        return list(dict.fromkeys(names))

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_by_accident(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"origin {origin!r} must start with http:// or https://")
        return value

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _known_dialect(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("schedule", "backup_schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from kasparro.pipeline.schedule import parse_schedule

        parse_schedule(value)
        return value

    @model_validator(mode="after")
    def _waits_ordered(self) -> Settings:
        if self.retry_max_wait < self.retry_min_wait:
            raise ValueError("KASPARRO_RETRY_MAX_WAIT must be >= KASPARRO_RETRY_MIN_WAIT")
        return self

    # derived values
    def top_n_for(self, source: str) -> int:
        override = {"coingecko": self.coingecko_top_n, "coinpaprika": self.coinpaprika_top_n}.get(
            source
        )
        return override or self.top_n

    @property
    def coingecko_url(self) -> str:
        if self.coingecko_base_url:
            return self.coingecko_base_url.rstrip("/")
        if self.coingecko_api_key and self.coingecko_key_type == "pro":
            return COINGECKO_PRO_URL
        return COINGECKO_PUBLIC_URL

    @property
    def coinpaprika_url(self) -> str:
        if self.coinpaprika_base_url:
            return self.coinpaprika_base_url.rstrip("/")
        return COINPAPRIKA_PRO_URL if self.coinpaprika_api_key else COINPAPRIKA_FREE_URL

    def coingecko_headers(self) -> dict[str, str]:
        key = self.coingecko_api_key.get_secret_value() if self.coingecko_api_key else ""
        if not key:
            return {}
        return {f"x-cg-{self.coingecko_key_type}-api-key": key}

    def coinpaprika_headers(self) -> dict[str, str]:
        key = self.coinpaprika_api_key.get_secret_value() if self.coinpaprika_api_key else ""
        if not key:
            return {}
        return {
            "Authorization": f"Bearer {key}" if self.coinpaprika_auth_scheme == "bearer" else key
        }

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """``repr()`` and ``str()`` show database URLs with their passwords masked (the other
        secrets are ``SecretStr`` and mask themselves)."""
        for name, value in super().__repr_args__():
            if name in ("database_url", "database_read_url") and isinstance(value, str):
                value = mask_url(value)
            yield name, value

    def secret_values(self) -> list[str]:
        """Every secret's plain value, for scrubbing logs and checking responses."""
        secrets = [
            self.coingecko_api_key,
            self.coinpaprika_api_key,
            self.admin_api_key,
            self.redis_url,
        ]
        values = [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]
        for url in (self.database_url, self.database_read_url):
            password = _url_password(url)
            if password:
                values.append(password)
        return values

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for ``kasparro config show``."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = "**********" if value.get_secret_value() else ""
            elif name in ("database_url", "database_read_url") and value:
                value = mask_url(value)
            elif isinstance(value, Path):
                value = str(value)
            shown[ENV_PREFIX + name.upper()] = value
        shown["(effective coingecko url)"] = self.coingecko_url
        shown["(effective coinpaprika url)"] = self.coinpaprika_url
        return shown


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:
        return None


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "***"


def load_settings(**overrides: Any) -> Settings:
    """Build settings once; turn validation errors into one message naming each variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            name = ENV_PREFIX + field.upper() if field else "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
