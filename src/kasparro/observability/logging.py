"""Structured logging, configured once at the entry point.

Every line carries the ``run_id`` and ``source`` bound with :func:`log_context`, and any secret
value registered through :func:`configure_logging` is scrubbed before a line is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from kasparro.scrub import Scrubber

if TYPE_CHECKING:
    from kasparro.config import Settings

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "kasparro_log_context", default=None
)
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind fields (``run_id``, ``source``, ``request_id`` …) to every line logged inside."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, message, logger, context and extras."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(_context.get() or {})
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.scrub(orjson.dumps(entry, default=str).decode())


class ConsoleFormatter(logging.Formatter):
    """A readable single line for local development."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        extras = {**(_context.get() or {})}
        extras.update(
            {
                k: v
                for k, v in record.__dict__.items()
                if k not in _RESERVED and not k.startswith("_")
            }
        )
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()} {tail}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.scrub(line)


def configure_logging(
    *, fmt: str = "json", level: str = "INFO", secrets: Iterable[str] = (), stream: Any = None
) -> None:
    """Install one stdout handler on the root logger; call once, at the entry point."""
    scrub = Scrubber(secrets, min_length=4)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(scrub) if fmt == "json" else ConsoleFormatter(scrub))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers = []
        uv.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def configure_logging_for(settings: Settings, *, stream: Any = None) -> None:
    """Logging as the settings ask for it, scrubbing every secret they hold (stdout by default)."""
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        secrets=settings.secret_values(),
        stream=stream,
    )
