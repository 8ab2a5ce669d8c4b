"""Query parameters shared by several routes, each described with examples for the OpenAPI docs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from kasparro.schemas.api import RunStatus, SourceName

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
MAX_ID = 2**31 - 1

SourceFilter = Annotated[
    SourceName | None, Query(description="Only rows from this source.", examples=["coingecko"])
]
StatusFilter = Annotated[
    RunStatus | None, Query(description="Only runs with this status.", examples=["success"])
]
SymbolFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=PRINTABLE,
        description="Ticker symbol, case-insensitive.",
        examples=["btc"],
    ),
]
RunIdFilter = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Only rows of this ETL run.", examples=[7])
]
