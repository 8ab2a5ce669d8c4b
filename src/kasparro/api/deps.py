"""Typed dependencies: the app's services, a read connection, and the shared pagination parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, Query, Request
from sqlalchemy import Engine

from kasparro.api.cache import DataVersionTracker, ResponseCache, TotalsCache
from kasparro.api.trigger import RunTrigger
from kasparro.config import Settings
from kasparro.observability.metrics import ApiMetrics
from kasparro.scrub import Scrubber


@dataclass
class ApiServices:
    """Everything the routes need, built once by the app factory."""

    settings: Settings
    engine: Engine
    tracker: DataVersionTracker
    cache: ResponseCache
    metrics: ApiMetrics
    trigger: RunTrigger
    scrub: Scrubber
    totals: TotalsCache
    #: threads of their own for /health and /metrics, so probes and scrapes never queue behind
    #: the request handlers (KASPARRO_API_THREADS) under load
    ops_threads: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(2))


async def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


ServicesDep = Annotated[ApiServices, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_engine(services: ServicesDep) -> Engine:
    """The reader engine. Routes open their connection inside the handler's own thread: a
    connection taken in a separate dependency thread could be held while the handler waits for a
    free thread, and a full threadpool would then wait on the pool forever."""
    return services.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


async def get_scrubber(services: ServicesDep) -> Scrubber:
    return services.scrub


ScrubDep = Annotated[Scrubber, Depends(get_scrubber)]


async def get_totals(services: ServicesDep) -> TotalsCache:
    return services.totals


TotalsDep = Annotated[TotalsCache, Depends(get_totals)]


# a cursor carries one sort value: a 255-character name of 4-byte characters is ~1.4 kB of base64
MAX_CURSOR_LENGTH = 4096


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None
    offset: int


async def get_page_params(
    limit: Annotated[
        int, Query(ge=1, le=500, description="Rows per page (max 500).", examples=[50])
    ] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            pattern=r"^[A-Za-z0-9_\-=]+$",
            description="Opaque `next_cursor` from the previous page.",
            examples=["WyJpZCIsNTAsNTBd"],
        ),
    ] = None,
    page: Annotated[
        int | None,
        Query(
            ge=1,
            le=100_000,
            description="1-based page number (compatibility; prefer `cursor`).",
            examples=[2],
        ),
    ] = None,
    offset: Annotated[
        int | None,
        Query(
            ge=0,
            le=10_000_000,
            description="Rows to skip (compatibility; prefer `cursor`).",
            examples=[100],
        ),
    ] = None,
) -> PageParams:
    from kasparro.api.errors import ApiError

    if cursor is not None and (page is not None or offset is not None):
        raise ApiError(422, "validation_error", "use either cursor or page/offset, not both")
    if page is not None and offset is not None:
        raise ApiError(422, "validation_error", "use either page or offset, not both")
    skip = offset if offset is not None else ((page or 1) - 1) * limit
    return PageParams(limit=limit, cursor=cursor, offset=skip)


PageDep = Annotated[PageParams, Depends(get_page_params)]
