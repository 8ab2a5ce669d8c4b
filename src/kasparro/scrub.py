"""Removes configured secrets from texts Kasparro writes: log lines, and what the API serves (run
errors, drift samples). A secret is found as written, URL-encoded and JSON-escaped."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import overload
from urllib.parse import quote, quote_plus

import orjson

MASK = "***"


def _forms(secret: str) -> set[str]:
    """The secret as written, as URLs and form bodies encode it (hex case is matched loosely),
    and as a JSON string holds it (a log line is JSON: quotes and backslashes come escaped)."""
    encoded = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote_plus(quote(secret, safe="")),
    }
    return encoded | {orjson.dumps(form).decode()[1:-1] for form in encoded}


class Scrubber:
    """Replaces every form of every secret with ``***``; a no-op when there are no secrets.
    Secrets shorter than ``min_length`` are left alone (masking them would garble every text)."""

    def __init__(self, secrets: Iterable[str], *, min_length: int = 1) -> None:
        forms = {form for secret in secrets if len(secret) >= min_length for form in _forms(secret)}
        # longest first, so an encoded form is replaced whole rather than around its plain part
        alternatives = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in alternatives), re.IGNORECASE)
            if alternatives
            else None
        )

    @overload
    def __call__(self, text: str) -> str: ...
    @overload
    def __call__(self, text: None) -> None: ...
    def __call__(self, text: str | None) -> str | None:
        if text is None or self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
