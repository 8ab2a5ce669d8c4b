"""Keys under which the middleware leaves per-request facts in the ASGI scope for the routes."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

REQUEST_ID_KEY = "kasparro.request_id"
STARTED_KEY = "kasparro.started"
DATA_STATE_KEY = "kasparro.data_state"
#: a callable turning a data-state token into this request's cache key
REKEY_KEY = "kasparro.rekey"
CACHE_KEY_KEY = "kasparro.cache_key"
CACHE_STORE_KEY = "kasparro.cache_store"
ROUTE_KEY = "kasparro.route"
UNMATCHED_ROUTE = "<unmatched>"


def request_id_of(scope: MutableMapping[str, Any]) -> str | None:
    value = scope.get(REQUEST_ID_KEY)
    return str(value) if value is not None else None


def route_template(scope: MutableMapping[str, Any]) -> str:
    """The matched route's path template (never the raw path, which would explode label counts)."""
    cached = scope.get(ROUTE_KEY)
    if cached is not None:
        return str(cached)
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE
