"""``GET /``: what this service is and where to go next."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from kasparro import __version__
from kasparro.api.deps import SettingsDep
from kasparro.api.responses import JsonResponse
from kasparro.schemas.api import RootPublic

router = APIRouter(tags=["meta"])

LINKS = {
    "docs": "/docs",
    "openapi": "/openapi.json",
    "health": "/health",
    "metrics": "/metrics",
    "data": "/data",
    "stats": "/stats",
    "runs": "/runs",
    "assets": "/assets",
    "drift": "/drift",
}


@router.get("/", response_model=RootPublic, summary="Service information")
def root(settings: SettingsDep) -> Response:
    """Name, version, enabled sources and links to the documentation, health and metrics."""
    info = RootPublic(
        name="kasparro", version=__version__, sources=list(settings.sources), links=LINKS
    )
    return JsonResponse(info)
