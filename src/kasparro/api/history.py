"""Price-history windows aligned to their bucket interval, and OHLC buckets from observations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from kasparro.api.errors import ApiError
from kasparro.db.queries import Observation
from kasparro.schemas.api import HistoryBucket

INTERVAL_SECONDS = {"1h": 3600, "1d": 86400}
DEFAULT_SPAN = {"1h": timedelta(days=7), "1d": timedelta(days=90)}
MAX_BUCKETS = 5000
_HISTORY_PATH = re.compile(r"^/assets/[^/]+/history$")


def utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ApiError(422, "validation_error", "timestamp out of range") from None


def _floor(moment: datetime, step: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, UTC)


def _ceil(moment: datetime, step: int) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + timedelta(seconds=step)


def now_bucket_end(interval: str, now: datetime | None = None) -> datetime:
    """The end of the bucket ``now`` falls in: the default ``to``, stable for a whole bucket."""
    step = INTERVAL_SECONDS[interval]
    return _floor(now or datetime.now(UTC), step) + timedelta(seconds=step)


def aligned_window(
    start: datetime | None, end: datetime | None, interval: str, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """``[from, to)`` with ``from`` rounded down and ``to`` rounded up to whole buckets."""
    step = INTERVAL_SECONDS[interval]
    try:
        stop = _ceil(utc(end), step) if end else now_bucket_end(interval, now)
        begin = _floor(utc(start), step) if start else stop - DEFAULT_SPAN[interval]
    except (OverflowError, ValueError, OSError):
        raise ApiError(422, "validation_error", "timestamp out of range") from None
    if begin >= stop:
        raise ApiError(422, "validation_error", "'from' must be before 'to'")
    if (stop - begin).total_seconds() / step > MAX_BUCKETS:
        raise ApiError(
            422, "validation_error", f"range too long: at most {MAX_BUCKETS} buckets of {interval}"
        )
    return begin, stop


def window_cache_token(path: str, query_string: bytes) -> str:
    """Extra cache-key material: for a history request without ``to``, the bucket "now" is in."""
    if not _HISTORY_PATH.match(path):
        return ""
    query = parse_qs(query_string.decode("latin-1"))
    if "to" in query:
        return ""
    interval = (query.get("interval") or ["1h"])[-1]
    if interval not in INTERVAL_SECONDS:
        return ""
    return now_bucket_end(interval).isoformat()


def buckets(rows: Sequence[Observation], step: int) -> list[HistoryBucket]:
    """Group observations ``(epoch, price, high, low, volume)``, oldest first, into buckets of
    ``step`` seconds: open and close are the first and last price, high and low span prices and
    the reported highs and lows, volume is the last one reported."""
    out: list[HistoryBucket] = []
    members: list[Observation] = []
    current: int | None = None
    for row in rows:
        start = row[0] - row[0] % step
        if start != current and members:
            out.append(_bucket(current or 0, members))
            members = []
        current = start
        members.append(row)
    if members:
        out.append(_bucket(current or 0, members))
    return out


def _bucket(start: int, members: list[Observation]) -> HistoryBucket:
    prices = [m[1] for m in members if m[1] is not None]
    highs = prices + [m[2] for m in members if m[2] is not None]
    lows = prices + [m[3] for m in members if m[3] is not None]
    volumes = [m[4] for m in members if m[4] is not None]
    return HistoryBucket(
        start=datetime.fromtimestamp(start, UTC),
        open=prices[0] if prices else None,
        high=max(highs) if highs else None,
        low=min(lows) if lows else None,
        close=prices[-1] if prices else None,
        volume_24h_usd=volumes[-1] if volumes else None,
        observations=len(members),
    )
