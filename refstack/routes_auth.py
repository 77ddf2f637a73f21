"""The auth service's endpoints: register, login, refresh, validate, logout, E2E bypass."""

from __future__ import annotations

import asyncio
import hmac
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from refstack.app_state import services_of
from refstack.clock import iso_ms
from refstack.passwords import hash_password, verify_password
from refstack.services import Services
from refstack.tokens import PERMISSIONS, TokenError
from refstack.web import ApiError, read_json_object, required_str

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAX_EMAIL = 254
_MAX_PASSWORD = 1024
_MAX_TOKEN = 8192


async def register(request: Request) -> Response:
    services = services_of(request)
    data = await _body(services, request)
    email = _email(data)
    password = required_str(data, "password", _MAX_PASSWORD)
    hashed = await asyncio.to_thread(hash_password, password)
    user = await services.store.create_user(email, hashed)
    if user is None:
        raise ApiError(409, "email_exists", "an account with this email already exists")
    return JSONResponse({"user_id": user.user_id, "email": user.email}, status_code=201)


async def login(request: Request) -> Response:
    services = services_of(request)
    data = await _body(services, request)
    email = required_str(data, "email", _MAX_EMAIL).strip().lower()
    password = required_str(data, "password", _MAX_PASSWORD)
    user = await services.store.user_by_email(email)
    stored = user.password_hash if user is not None else None
    # Always run the KDF, so an unknown email costs as much as a wrong password.
    matches = await asyncio.to_thread(verify_password, password, stored)
    if user is None or not matches:
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    return JSONResponse(await _start_session(services, user.user_id, user.email))


async def refresh(request: Request) -> Response:
    services = services_of(request)
    data = await _body(services, request)
    token = required_str(data, "refresh_token", _MAX_TOKEN)
    try:
        claims = services.tokens.decode(token, expect="refresh")
    except TokenError as exc:
        raise ApiError(401, "invalid_token", str(exc)) from None
    if await services.sessions.is_revoked(claims.sid):
        raise ApiError(401, "token_revoked", "this session has been logged out")
    # No rotation (the protocol allows either): the session id carries over, so a
    # logout still revokes every refresh token of the session.
    return JSONResponse(services.tokens.issue_pair(claims.user_id, claims.email, claims.sid))


async def validate(request: Request) -> Response:
    services = services_of(request)
    data = await _body(services, request)
    token = required_str(data, "token", _MAX_TOKEN)
    try:
        claims = services.tokens.decode_access(token)
    except TokenError as exc:
        return JSONResponse({"valid": False, "error": str(exc)}, status_code=401)
    return JSONResponse(
        {
            "valid": True,
            "user_id": claims.user_id,
            "email": claims.email,
            "permissions": list(PERMISSIONS),
            "expires_at": iso_ms(claims.expires_at),
            "token_type": claims.type,
        }
    )


async def logout(request: Request) -> Response:
    services = services_of(request)
    tokens = services.tokens
    data = await _body(services, request)
    token = required_str(data, "refresh_token", _MAX_TOKEN)
    try:
        # An expired refresh token can still name the session to close.
        claims = tokens.decode(token, expect="refresh", allow_expired=True)
    except TokenError as exc:
        raise ApiError(401, "invalid_token", str(exc)) from None
    # Any refresh token of this session expires within refresh_ttl from now at the latest.
    await services.sessions.revoke(claims.sid, tokens.refresh_ttl)
    return Response(status_code=204)


async def e2e_test_auth(request: Request) -> Response:
    """The E2E bypass; not routed at all in production mode."""
    services = services_of(request)
    expected = services.settings.e2e_key
    given = request.headers.get("x-e2e-bypass-key")
    if (
        expected is None
        or given is None
        or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
    ):
        raise ApiError(403, "forbidden", "missing or wrong X-E2E-Bypass-Key")
    data = await _body(services, request)
    user = await services.store.ensure_user(_email(data))
    pair = await _start_session(services, user.user_id, user.email)
    return JSONResponse({**pair, "email": user.email})


async def _body(services: Services, request: Request) -> dict[str, Any]:
    return await read_json_object(request, services.settings.max_body_bytes)


async def _start_session(services: Services, user_id: str, email: str) -> dict[str, Any]:
    tokens = services.tokens
    sid = tokens.new_session_id()
    await services.sessions.open_session(sid, user_id, tokens.refresh_ttl)
    return tokens.issue_pair(user_id, email, sid)


def _email(data: dict[str, Any]) -> str:
    email = required_str(data, "email", _MAX_EMAIL).strip().lower()
    if not _EMAIL.match(email):
        raise ApiError(422, "malformed_body", "field 'email' is not an email address")
    return email
