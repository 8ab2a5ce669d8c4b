"""The unified record every source maps into, and how a record's identity is spelled."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from kasparro.exceptions import RecordValidationError

#: What the database columns hold (db/models.py; tests/ingestion/test_storage_limits.py keeps the
#: two equal). A value beyond them would fail the whole batch it came in, so a record carrying one
#: is refused when it is built, and quarantined.
SYMBOL_MAX = 64
TEXT_MAX = 255  # coin ids and names
MATCH_KEY_MAX = 330
RANK_MAX = 2**31 - 1  # a 32-bit INTEGER

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
    """One source's view of one coin at one moment, in USD. Building one the database could not
    store raises RecordValidationError (the record is quarantined)."""

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

    def __post_init__(self) -> None:
        # mappers upper-case symbols and derive ids: what a source model checked can grow here.
        # One cheap test for the usual record; the reason is worked out only for a refused one.
        # (An ASCII symbol and name keep their lengths in the match key: 64 + 1 + 255 fit.)
        if (
            len(self.symbol) > SYMBOL_MAX
            or len(self.coin_id) > TEXT_MAX
            or len(self.name) > TEXT_MAX
            or (self.rank is not None and not -RANK_MAX - 1 <= self.rank <= RANK_MAX)
            or not (self.symbol.isascii() and self.name.isascii())
        ):
            problem = _unstorable(self)
            if problem:
                raise RecordValidationError(problem)


def _unstorable(record: UnifiedRecord) -> str | None:
    """Why the database could not store this record, if it could not."""
    if len(record.symbol) > SYMBOL_MAX:
        return f"symbol is longer than {SYMBOL_MAX} characters"
    if len(record.coin_id) > TEXT_MAX:
        return f"coin id is longer than {TEXT_MAX} characters"
    if len(record.name) > TEXT_MAX:
        return f"name is longer than {TEXT_MAX} characters"
    if record.rank is not None and not -RANK_MAX - 1 <= record.rank <= RANK_MAX:
        return f"rank {record.rank} is out of range"
    if len(match_key(record.symbol, record.name)) > MATCH_KEY_MAX:
        return f"symbol and name make a match key longer than {MATCH_KEY_MAX} characters"
    return None
