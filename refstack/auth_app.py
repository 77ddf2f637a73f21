"""The auth service: register, login, refresh, validate, logout and the E2E bypass."""

from __future__ import annotations

import asyncio
import hmac
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refstack import __version__
from refstack.clock import iso_ms
from refstack.health import NOT_CONFIGURED, probe
from refstack.passwords import hash_password, verify_password
from refstack.services import Services
from refstack.sessions import SessionsUnavailable
from refstack.store import StoreUnavailable
from refstack.tokens import PERMISSIONS, TokenError
from refstack.web import (
    EXCEPTION_HANDLERS,
    ApiError,
    dependency_unavailable,
    read_json_object,
    required_str,
)

SERVICE_NAME = "auth-service"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAX_EMAIL = 254
_MAX_PASSWORD = 1024
_MAX_TOKEN = 8192


def build_auth_app(services: Services) -> Starlette:
    settings = services.settings
    faults = settings.faults
    store = services.store
    sessions = services.sessions
    tokens = services.tokens
    max_body = settings.max_body_bytes

    async def body(request: Request) -> dict[str, Any]:
        return await read_json_object(request, max_body)

    async def start_session(user_id: str, email: str) -> dict[str, Any]:
        sid = tokens.new_session_id()
        await sessions.open_session(sid, user_id, tokens.refresh_ttl)
        return tokens.issue_pair(user_id, email, sid)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "healthy",
                "service": SERVICE_NAME,
                "version": __version__,
                "uptime_seconds": services.uptime_seconds,
                "mode": settings.mode,
            }
        )

    async def ready(request: Request) -> Response:
        if faults.ready_lies:
            lie = {"status": "healthy", "connected": True, "response_time_ms": 0.1, "error": None}
            redis_lie = lie if settings.redis_url else NOT_CONFIGURED
            return JSONResponse({"status": "ready", "checks": {"database": lie, "redis": redis_lie}})
        if settings.redis_url:
            database, redis = await asyncio.gather(probe(store.ping), probe(sessions.ping))
        else:
            database, redis = await probe(store.ping), NOT_CONFIGURED
        checks = {"database": database, "redis": redis}
        ok = all(c["status"] in ("healthy", "not_configured") for c in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "service": SERVICE_NAME, "checks": checks},
            status_code=200 if ok else 503,
        )

    async def register(request: Request) -> Response:
        data = await body(request)
        email = _email(data)
        password = required_str(data, "password", _MAX_PASSWORD)
        hashed = await asyncio.to_thread(hash_password, password)
        user = await store.create_user(email, hashed)
        if user is None:
            raise ApiError(409, "email_exists", "an account with this email already exists")
        return JSONResponse({"user_id": user.user_id, "email": user.email}, status_code=201)

    async def login(request: Request) -> Response:
        data = await body(request)
        email = required_str(data, "email", _MAX_EMAIL).strip().lower()
        password = required_str(data, "password", _MAX_PASSWORD)
        user = await store.user_by_email(email)
        stored = user.password_hash if user is not None else None
        # Always run the KDF, so an unknown email costs as much as a wrong password.
        matches = await asyncio.to_thread(verify_password, password, stored)
        if user is None or not matches:
            raise ApiError(401, "invalid_credentials", "wrong email or password")
        return JSONResponse(await start_session(user.user_id, user.email))

    async def refresh(request: Request) -> Response:
        data = await body(request)
        token = required_str(data, "refresh_token", _MAX_TOKEN)
        try:
            claims = tokens.decode(token, expect="refresh")
        except TokenError as exc:
            raise ApiError(401, "invalid_token", str(exc)) from None
        if await sessions.is_revoked(claims.sid):
            raise ApiError(401, "token_revoked", "this session has been logged out")
        # No rotation (the protocol allows either): the session id carries over, so a
        # logout still revokes every refresh token of the session.
        return JSONResponse(tokens.issue_pair(claims.user_id, claims.email, claims.sid))

    async def validate(request: Request) -> Response:
        data = await body(request)
        token = required_str(data, "token", _MAX_TOKEN)
        try:
            claims = tokens.decode(
                token,
                expect="access",
                allow_expired=faults.accept_expired,
                allow_other_type=faults.accept_refresh_as_access,
            )
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
        data = await body(request)
        token = required_str(data, "refresh_token", _MAX_TOKEN)
        try:
            # An expired refresh token can still name the session to close.
            claims = tokens.decode(token, expect="refresh", allow_expired=True)
        except TokenError as exc:
            raise ApiError(401, "invalid_token", str(exc)) from None
        # Any refresh token of this session expires within refresh_ttl from now at the latest.
        await sessions.revoke(claims.sid, tokens.refresh_ttl)
        return Response(status_code=204)

    async def e2e_test_auth(request: Request) -> Response:
        expected = settings.e2e_key
        given = request.headers.get("x-e2e-bypass-key")
        if (
            expected is None
            or given is None
            or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
        ):
            raise ApiError(403, "forbidden", "missing or wrong X-E2E-Bypass-Key")
        data = await body(request)
        user = await store.ensure_user(_email(data))
        pair = await start_session(user.user_id, user.email)
        return JSONResponse({**pair, "email": user.email})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/auth/register", register, methods=["POST"]),
        Route("/auth/login", login, methods=["POST"]),
        Route("/auth/refresh", refresh, methods=["POST"]),
        Route("/auth/validate", validate, methods=["POST"]),
        Route("/auth/logout", logout, methods=["POST"]),
    ]
    if not settings.production:
        # In production the bypass does not exist at all: 404, like any unknown path.
        routes.append(Route("/auth/e2e/test-auth", e2e_test_auth, methods=["POST"]))

    return Starlette(
        routes=routes,
        exception_handlers={
            **EXCEPTION_HANDLERS,
            StoreUnavailable: dependency_unavailable,
            SessionsUnavailable: dependency_unavailable,
        },
    )


def _email(data: dict[str, Any]) -> str:
    email = required_str(data, "email", _MAX_EMAIL).strip().lower()
    if not _EMAIL.match(email):
        raise ApiError(422, "malformed_body", "field 'email' is not an email address")
    return email
