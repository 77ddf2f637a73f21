"""HTTP plumbing shared by both services: JSON bodies with limits, JSON errors."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("refstack.web")


class ApiError(Exception):
    """Answer with this status and a JSON body {"error": code, ...}."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str | None = None,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or error)
        self.status = status
        self.body = body if body is not None else {"error": error, "message": message or error}
        self.headers = headers


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object: 413 over max_bytes, 422 when malformed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "body_too_large", f"request body exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, "body_too_large", f"request body exceeds {max_bytes} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "malformed_body", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "malformed_body", "request body must be a JSON object")
    return data


def required_str(data: dict[str, Any], name: str, max_length: int = 4096) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "malformed_body", f"field {name!r} must be a non-empty string")
    if len(value) > max_length:
        raise ApiError(422, "malformed_body", f"field {name!r} is longer than {max_length}")
    return value


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail.lower().replace(" ", "_"), "message": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def dependency_unavailable(request: Request, exc: Exception) -> Response:
    """For StoreUnavailable and SessionsUnavailable: the dependency is down, try later."""
    return JSONResponse(
        {"error": "service_unavailable", "message": str(exc)},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "internal_error", "message": "internal error"}, status_code=500)


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    HTTPException: _http_error,
    Exception: _internal_error,
}
