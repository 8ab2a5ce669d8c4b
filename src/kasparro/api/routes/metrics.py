"""``GET /metrics``: Prometheus exposition (HTTP, ETL from the database, process)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from kasparro.api.deps import ServicesDep

router = APIRouter(tags=["meta"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format.",
        }
    },
    summary="Prometheus metrics",
)
async def metrics(services: ServicesDep) -> Response:
    """HTTP requests and latency by route template, ETL counters read from the database, process metrics."""
    body = await anyio.to_thread.run_sync(services.metrics.render, limiter=services.ops_threads)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
