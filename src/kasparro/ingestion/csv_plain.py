"""Plainly written CSV rows, read without the model.

The CSV source sends the first row under a header through normalization, drift detection and
the ``CsvRow`` model. A later row whose every cell is plainly written (a null token, a finite
number within the model's bounds, text within its lengths and without surrounding whitespace, a
timestamp the model parses) is checked here against the model's own constraints, read from the
model, and gives the same record for a fraction of the cost; any other row goes to the model,
which explains what is wrong. ``tests/ingestion/test_csv_plain_rows.py`` holds both ways to the
same record.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any

from annotated_types import Ge, MaxLen, MinLen
from pydantic import TypeAdapter, ValidationError

from kasparro.schemas.common import as_utc
from kasparro.schemas.csv import CSV_NUMBER_FIELDS, NULL_TOKENS, CsvRow

REQUIRED = frozenset(name for name, info in CsvRow.model_fields.items() if info.is_required())
NUMERIC = frozenset(CSV_NUMBER_FIELDS)
LONGEST_NULL_TOKEN = max(map(len, NULL_TOKENS))


def _constraint(name: str, kind: type[Any], attribute: str) -> Any:
    for item in CsvRow.model_fields[name].metadata:
        if isinstance(item, kind):
            return getattr(item, attribute)
    return None


# What the plain-row path checks, read from the model so the two cannot drift apart.
_NONNEGATIVE = frozenset(n for n in CSV_NUMBER_FIELDS if _constraint(n, Ge, "ge") == 0)
_TEXT_LIMITS = {
    name: (_constraint(name, MinLen, "min_length") or 0, _constraint(name, MaxLen, "max_length"))
    for name, info in CsvRow.model_fields.items()
    if info.annotation in (str, str | None)
}
_TIMES = frozenset(
    n for n, info in CsvRow.model_fields.items() if info.annotation in (datetime, datetime | None)
)
_NO_FIELDS: dict[str, Any] = dict.fromkeys(CsvRow.model_fields)
_MOMENT = TypeAdapter(datetime)


@functools.lru_cache(maxsize=4096)
def _moment(text: str) -> datetime | None:
    """A timestamp cell as the model parses it (a file repeats each date once per coin), or None
    when the model would reject it."""
    try:
        return as_utc(_MOMENT.validate_python(text))  # as the record stores it
    except ValidationError:
        return None


_NUMBER, _TIME, _TEXT = range(3)


@functools.lru_cache(maxsize=64)
def _plan(names: tuple[str, ...]) -> tuple[tuple[int, str, int, int, int], ...]:
    """For one header: (cell index, field, kind, low, high) for each column the model reads, in
    order (a later column of the same field wins, as in the model's input). For a number, ``low``
    is 1 when it must not be negative; for text, ``low`` and ``high`` bound its length."""
    plan = []
    for index, name in enumerate(names):
        if name not in _NO_FIELDS:
            continue  # a column the model ignores
        if name in NUMERIC:
            plan.append((index, name, _NUMBER, int(name in _NONNEGATIVE), 0))
        elif name in _TIMES:
            plan.append((index, name, _TIME, 0, 0))
        else:
            low, high = _TEXT_LIMITS[name]
            plan.append((index, name, _TEXT, low, high or 2**62))
    return tuple(plan)


def plain_fields(names: tuple[str, ...], payload: dict[str, Any]) -> dict[str, Any] | None:
    """The model's fields for a row whose every cell is plainly written, checked as the model
    checks them (after ``CsvIngestion.normalize``); None for any other row, which the model
    then judges. Cells with surrounding whitespace are left to the model, whose idea of
    whitespace differs from ``str.strip`` at the edges."""
    fields = dict(_NO_FIELDS)
    cells = tuple(payload.values())
    for index, name, kind, low, high in _plan(names):
        cell = cells[index]
        if type(cell) is not str:
            return None
        text = cell.strip()
        if len(text) <= LONGEST_NULL_TOKEN and text.lower() in NULL_TOKENS:
            fields[name] = None
        elif kind == _NUMBER:
            try:
                number = float(text)
            except ValueError:
                return None
            if not math.isfinite(number) or (low and number < 0):
                return None
            fields[name] = number
        elif len(text) != len(cell):
            return None
        elif kind == _TIME:
            if (moment := _moment(cell)) is None:
                return None
            fields[name] = moment
        elif not low <= len(cell) <= high:
            return None
        else:
            fields[name] = cell
    for name in REQUIRED:
        if fields[name] is None:
            return None
    return fields
