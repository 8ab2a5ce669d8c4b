"""How the service commands configure their HTTP server."""

from __future__ import annotations

import gc
from collections.abc import Callable

from fastapi import FastAPI

from kasparro.cli.service import _server
from kasparro.config import Settings


def test_idle_connections_stay_open_as_long_as_configured(
    make_settings: Callable[..., Settings],
) -> None:
    """uvicorn's own 5 s closed connections that 200 busy clients were about to reuse (the
    reliability load test saw 'server disconnected' errors); the setting reaches the server."""
    try:
        default = _server(FastAPI(), make_settings(), None, None)
        configured = _server(FastAPI(), make_settings(http_keep_alive=120), None, None)
    finally:
        gc.unfreeze()  # _server freezes the heap for a serving process; this one goes on testing

    assert default.config.timeout_keep_alive == 75
    assert configured.config.timeout_keep_alive == 120
