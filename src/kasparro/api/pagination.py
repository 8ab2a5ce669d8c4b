"""Opaque keyset cursors (base64 of the sort spec, the sort key and the row id) and the pagination body."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from kasparro.api.errors import ApiError
from kasparro.db.queries import Page
from kasparro.schemas.api import Pagination

ValueKind = Literal["int", "float", "str", "datetime"]


def _invalid(reason: str) -> ApiError:
    return ApiError(422, "invalid_cursor", f"invalid cursor: {reason}", details={"param": "cursor"})


def encode_cursor(spec: str, value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()
    raw = orjson.dumps([spec, value, row_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _check(value: Any, kind: ValueKind) -> Any:
    if value is None:
        return None
    if (
        kind == "int"
        and isinstance(value, int)
        and not isinstance(value, bool)
        and abs(value) < 2**63
    ):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "str" and isinstance(value, str) and "\x00" not in value:
        return value
    if kind == "datetime" and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _invalid("bad timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _invalid("sort key has the wrong type")


def decode_cursor(cursor: str, *, spec: str, kind: ValueKind) -> tuple[Any, int]:
    """The (sort value, row id) after which the next page starts; 422 if tampered or for another sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _invalid("not a cursor issued by this API") from None
    if not isinstance(decoded, list) or len(decoded) != 3:
        raise _invalid("malformed")
    cursor_spec, value, row_id = decoded
    if cursor_spec != spec:
        raise _invalid(f"issued for sort {cursor_spec!r}, not {spec!r}")
    if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 <= row_id < 2**31:
        raise _invalid("bad row id")
    return _check(value, kind), row_id


def pagination(page: Page, *, limit: int, spec: str, key: str, id_key: str = "id") -> Pagination:
    """The pagination block, with a cursor pointing after the last row when more follow."""
    next_cursor = None
    if page.has_more and page.rows:
        last = page.rows[-1]
        next_cursor = encode_cursor(spec, last[key], int(last[id_key]))
    return Pagination(
        limit=limit, next_cursor=next_cursor, has_more=page.has_more, total=page.total
    )
