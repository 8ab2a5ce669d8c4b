"""Every error becomes a response here, in one body shape: ``{"error": {...}, "request_id": ...}``."""

from __future__ import annotations

import logging
from typing import Any, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from kasparro.api.context import request_id_of
from kasparro.exceptions import DatabaseUnavailableError
from kasparro.schemas.api import ErrorPublic

log = logging.getLogger("kasparro.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}

# Documented on every route, so the OpenAPI schema matches what the handlers send.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorPublic, "description": "Invalid parameters."},
    429: {"model": ErrorPublic, "description": "Too many requests from this client."},
    503: {"model": ErrorPublic, "description": "The database is unreachable."},
}


class ApiError(Exception):
    """An error the API answers on purpose, with its status and code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_body(
    code: str, message: str, *, details: Any = None, request_id: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"code": code, "message": message, "details": details}, "request_id": request_id},
        default=str,
    )


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = error_body(code, message, details=details, request_id=request_id)
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def _request_id(request: Request) -> str | None:
    return request_id_of(request.scope)


async def _api_error(request: Request, exc: Exception) -> Response:
    exc = cast(ApiError, exc)
    return error_response(
        exc.status_code,
        exc.code,
        exc.message,
        details=exc.details,
        request_id=_request_id(request),
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    exc = cast(RequestValidationError, exc)
    details = [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return error_response(
        422,
        "validation_error",
        "request parameters are invalid",
        details=details,
        request_id=_request_id(request),
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(
        exc.status_code, code, str(exc.detail), request_id=_request_id(request), headers=headers
    )


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable", extra={"error_type": type(exc).__name__})
    return error_response(
        503,
        "database_unavailable",
        "the database is unreachable; try again shortly",
        request_id=_request_id(request),
        headers={"Retry-After": "5"},
    )


def install_exception_handlers(app: FastAPI) -> None:
    """Register every handler; unexpected exceptions are answered by the request middleware."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in (OperationalError, PoolTimeoutError, DatabaseUnavailableError):
        app.add_exception_handler(exc_type, _database_down)
