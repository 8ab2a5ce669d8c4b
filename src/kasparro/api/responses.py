"""Rendering: JSON bytes via pydantic-core/orjson, with the cacheable part handed to the cache middleware."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import Connection, Engine
from starlette.responses import JSONResponse, Response

from kasparro.api.cache import DataState, etag_for, etag_matches
from kasparro.api.context import (
    CACHE_KEY_KEY,
    CACHE_STORE_KEY,
    DATA_STATE_KEY,
    REKEY_KEY,
    STARTED_KEY,
    request_id_of,
)
from kasparro.api.middleware import splice_meta
from kasparro.db import queries


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


@contextlib.contextmanager
def read_snapshot(request: Request, engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all come from one snapshot, with this request's data state read
    from that same snapshot: the version label and the cache key then describe exactly the data
    the response is built from, even when a pass commits while the request is served."""
    with engine.connect() as conn:
        version, token = queries.read_data_state(conn=conn)
        state = DataState(version=version, token=token)
        previous = request.scope.get(DATA_STATE_KEY)
        request.scope[DATA_STATE_KEY] = state
        request.app.state.services.tracker.observe(state)
        rekey = request.scope.get(REKEY_KEY)
        if isinstance(previous, DataState) and previous.token != token and callable(rekey):
            request.scope[CACHE_KEY_KEY] = rekey(token)
        yield conn


def totals_key(request: Request, resource: str, **filters: Any) -> tuple[str, ...]:
    """The key under which a query's match count is remembered for this data state."""
    token = data_state(request).token
    return (token, resource, *(f"{name}={value!r}" for name, value in sorted(filters.items())))


def render(request: Request, payload: BaseModel) -> Response:
    """Serialize ``payload`` without its ``meta``, offer that to the cache, and close it with this request's meta."""
    state = data_state(request)
    prefix = payload.model_dump_json(exclude={"meta"}).encode()[:-1]
    key = request.scope.get(CACHE_KEY_KEY)
    headers = {"Cache-Control": "no-cache", "X-Cache": "miss"}
    if key is not None:
        request.scope[CACHE_STORE_KEY] = prefix
        headers["ETag"] = etag_for(key)
        if etag_matches(request.headers.get("if-none-match"), key):
            return Response(status_code=304, headers=headers)
    started = request.scope.get(STARTED_KEY, time.perf_counter())
    body = splice_meta(
        prefix,
        request_id=request_id_of(request.scope) or "",
        started=started,
        version=state.version,
    )
    return Response(body, media_type="application/json", headers=headers)
