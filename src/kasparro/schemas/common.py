"""Building blocks shared by the source models: finite numbers, sentinels, timestamps."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict

SOURCE_MODEL_CONFIG = ConfigDict(
    extra="ignore", allow_inf_nan=False, str_strip_whitespace=True, frozen=True
)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("number must be finite")
    return value


def _zero_is_unknown(value: Any) -> Any:
    """CoinPaprika reports an unknown supply as 0."""
    if value == 0:
        return None
    return _finite_or_none(value)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# allow_inf_nan=False in SOURCE_MODEL_CONFIG already rejects NaN and infinities in the core validator.
Number = float | None
SupplyOrZero = Annotated[float | None, BeforeValidator(_zero_is_unknown)]
