"""The read API: ``create_app(settings, engine=None)`` builds the FastAPI application."""

from __future__ import annotations

from kasparro.api.app import create_app

__all__ = ["create_app"]
