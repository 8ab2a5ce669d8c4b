"""Removes configured secrets from texts the API serves (run errors, drift samples), also URL-encoded."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"


def _forms(secret: str) -> set[str]:
    """The secret as written, and as URLs and form bodies encode it (hex case is matched loosely)."""
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote_plus(quote(secret, safe="")),
    }


class Scrubber:
    """Replaces every form of every secret with ``***``; a no-op when there are no secrets."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for secret in secrets if secret for form in _forms(secret)}
        # longest first, so an encoded form is replaced whole rather than around its plain part
        alternatives = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in alternatives), re.IGNORECASE)
            if alternatives
            else None
        )

    def __call__(self, text: str | None) -> str | None:
        if text is None or self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
