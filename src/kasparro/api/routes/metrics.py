"""``GET /metrics``: Prometheus exposition (HTTP, ETL from the database, process)."""

from __future__ import annotations

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
def metrics(services: ServicesDep) -> Response:
    """HTTP requests and latency by route template, ETL counters read from the database, process metrics."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
