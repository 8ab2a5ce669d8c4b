"""Rendering: JSON bytes via pydantic-core/orjson, with the cacheable part handed to the cache middleware."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from kasparro.api.cache import DataState
from kasparro.api.context import (
    CACHE_KEY_KEY,
    CACHE_STORE_KEY,
    DATA_STATE_KEY,
    STARTED_KEY,
    request_id_of,
)
from kasparro.api.middleware import splice_meta


class JsonResponse(JSONResponse):
    """A JSON response serialized by pydantic-core or orjson (the default response class of the app)."""

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json().encode()
        return orjson.dumps(content)


def data_state(request: Request) -> DataState:
    """The data state the cache middleware read for this request, or a fresh read."""
    state = request.scope.get(DATA_STATE_KEY)
    if isinstance(state, DataState):
        return state
    tracker = request.app.state.services.tracker
    current: DataState = tracker.current()
    request.scope[DATA_STATE_KEY] = current
    return current


def render(request: Request, payload: BaseModel) -> Response:
    """Serialize ``payload`` without its ``meta``, offer that to the cache, and close it with this request's meta."""
    state = data_state(request)
    prefix = payload.model_dump_json(exclude={"meta"}).encode()[:-1]
    key = request.scope.get(CACHE_KEY_KEY)
    headers = {"Cache-Control": "no-cache", "X-Cache": "miss"}
    if key is not None:
        request.scope[CACHE_STORE_KEY] = prefix
        etag = f'"{key}"'
        headers["ETag"] = etag
        if request.headers.get("if-none-match") in (etag, "W/" + etag, "*"):
            return Response(status_code=304, headers=headers)
    started = request.scope.get(STARTED_KEY, time.perf_counter())
    body = splice_meta(
        prefix,
        request_id=request_id_of(request.scope) or "",
        started=started,
        version=state.version,
    )
    return Response(body, media_type="application/json", headers=headers)
