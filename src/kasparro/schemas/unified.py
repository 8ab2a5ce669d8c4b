"""The unified record every source maps into, and how a record's identity is spelled."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=65536)
def normalize_name(name: str) -> str:
    """Case-, accent-, space- and punctuation-insensitive form of a coin name."""
    if name.isascii():  # most names: no accents to strip, and casefold() is lower() here
        return _NOT_ALNUM.sub("", name.lower())
    folded = unicodedata.normalize("NFKD", name).casefold()
    ascii_only = "".join(ch for ch in folded if not unicodedata.combining(ch))
    cleaned = _NOT_ALNUM.sub("", ascii_only)
    return cleaned or "".join(ch for ch in folded if ch.isalnum())


def match_key(symbol: str, name: str) -> str:
    """Symbol plus normalized name: the second way (after source ids) to recognise one coin."""
    return f"{symbol.strip().upper()}|{normalize_name(name)}"


@dataclass(slots=True)
class UnifiedRecord:
    """One source's view of one coin at one moment, in USD."""

    coin_id: str
    symbol: str
    name: str
    rank: int | None = None
    price_usd: float | None = None
    market_cap_usd: float | None = None
    volume_24h_usd: float | None = None
    circulating_supply: float | None = None
    total_supply: float | None = None
    max_supply: float | None = None
    percent_change_24h: float | None = None
    source_updated_at: datetime | None = None
    open_usd: float | None = None
    high_usd: float | None = None
    low_usd: float | None = None
