"""One error tree for Kasparro, grouped by what the caller should do about it.

KasparroError
├── ConfigurationError          fix the settings and restart
├── SourceError                 an upstream failed
│   ├── RetriableSourceError    try again later (429, 5xx, timeouts, malformed bodies)
│   └── FatalSourceError        retrying will not help (401, 403, 404, other 4xx)
├── RecordValidationError       one record is bad: quarantine it, carry on
└── StorageError                the database failed
    └── DatabaseUnavailableError  it could not be reached at all
"""

from __future__ import annotations


class KasparroError(Exception):
    """Base class of every error Kasparro raises on purpose."""


class ConfigurationError(KasparroError):
    """A setting is missing or invalid; the message names the variable."""


class SourceError(KasparroError):
    """An upstream source could not deliver data."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after


class RetriableSourceError(SourceError):
    """A transient upstream failure: rate limit, server error, timeout, garbled body."""


class FatalSourceError(SourceError):
    """A permanent upstream failure: bad key, bad request, unknown endpoint."""


class RecordValidationError(KasparroError):
    """One record failed validation; it belongs in quarantine, not in a crash."""


class StorageError(KasparroError):
    """The database rejected or lost a write."""


class DatabaseUnavailableError(StorageError):
    """The database could not be reached."""
