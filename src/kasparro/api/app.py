"""The app factory: ``create_app(settings, engine=None)`` wires routes, middleware, cache and metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from starlette.middleware.cors import CORSMiddleware

from kasparro import __version__
from kasparro.api.cache import DataVersionTracker, TotalsCache, build_cache
from kasparro.api.deps import ApiServices
from kasparro.api.errors import install_exception_handlers
from kasparro.api.history import window_cache_token
from kasparro.api.middleware import (
    RateLimitMiddleware,
    RequestContextMiddleware,
    ResponseCacheMiddleware,
)
from kasparro.api.responses import JsonResponse
from kasparro.api.routes import assets, data, drift, health, metrics, root, runs, stats
from kasparro.api.trigger import RunTrigger
from kasparro.config import Settings
from kasparro.db.engine import make_engine
from kasparro.observability.metrics import ApiMetrics
from kasparro.scrub import Scrubber

CACHED_PREFIXES = ("/data", "/stats", "/runs", "/assets", "/drift")
DESCRIPTION = """Read API over Kasparro's unified crypto market data and its ETL bookkeeping.

Responses are cached per data version: send `If-None-Match` with a previous `ETag` to get `304`.
Every response carries `X-Request-ID`; errors share one body shape `{"error": {...}, "request_id": ...}`.
"""


def limit_handler_threads(threads: int) -> None:
    """Run at most ``threads`` request handlers at once in this process (they are synchronous and
    run in anyio's thread pool, 40 threads by default).

    Handlers are mostly Python work that releases the GIL only briefly (a SQLite step, a socket
    read); forty of them passing the GIL around serve fewer requests than two taking turns.
    Measured on uncached ``/data?limit=100`` at 64 connections: 38 → 96 requests/s on SQLite and
    59 → 92 on PostgreSQL (docs/benchmarks.md). Waiting requests queue in the event loop.
    """
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads


def operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the API. Without ``engine``, a reader engine on the read replica (or main database) is created."""
    owns_engine = engine is None
    if engine is None:
        engine = make_engine(
            settings.database_read_url or settings.database_url,
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout,
            writer=False,
        )
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    services = ApiServices(
        settings=settings,
        engine=engine,
        tracker=DataVersionTracker(engine, settings.data_version_ttl),
        cache=build_cache(redis_url=redis_url, max_entries=settings.cache_max_entries),
        metrics=ApiMetrics(engine),
        trigger=RunTrigger(settings),
        scrub=Scrubber(settings.secret_values()),
        totals=TotalsCache(settings.cache_max_entries),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        limit_handler_threads(settings.api_threads)
        try:
            yield
        finally:
            services.trigger.shutdown()
            await services.cache.close()
            if owns_engine:
                engine.dispose()

    app = FastAPI(
        title="Kasparro API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JsonResponse,
        # operation ids are the handlers' names, which the OpenAPI links refer to (api/links.py)
        generate_unique_id_function=operation_id,
    )
    app.state.services = services
    install_exception_handlers(app)
    for module in (root, health, data, stats, runs, assets, drift, metrics):
        app.include_router(module.router)

    # added innermost first: the request context wraps everything, the cache sits next to the routes
    app.add_middleware(
        ResponseCacheMiddleware,
        cache=services.cache,
        tracker=services.tracker,
        prefixes=CACHED_PREFIXES,
        key_extra=window_cache_token,
    )
    app.add_middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["X-Request-ID", "X-API-Key", "If-None-Match", "Content-Type"],
        expose_headers=["X-Request-ID", "ETag", "Retry-After", "X-Cache"],
        max_age=600,
    )
    app.add_middleware(RequestContextMiddleware, metrics=services.metrics)
    return app


def settle_heap() -> None:
    """Called once by a serving process after building its app: move every object made at start
    (routes, models, OpenAPI schemas, SQLAlchemy metadata) out of the garbage collector's reach,
    so a full collection under load scans only what requests allocate. Such pauses stall every
    connection of the worker at once, which is where the latency tail comes from."""
    gc.collect()
    gc.freeze()


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (needed for ``--workers N``): settings and logging
    are built here, once per worker process."""
    from kasparro.config import load_settings
    from kasparro.observability.logging import configure_logging_for

    settings = load_settings()
    configure_logging_for(settings)
    app = create_app(settings)
    settle_heap()
    return app
