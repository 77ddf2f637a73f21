"""Liveness and readiness of both services: GET /health, /api/health/ready, /health/ready.

Readiness really probes each dependency (see refstack.health); the ready_* faults make it lie.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from refstack import __version__
from refstack.app_state import services_of
from refstack.health import NOT_CONFIGURED, probe
from refstack.services import Services

BACKEND_SERVICE = "backend"
AUTH_SERVICE = "auth-service"

# What the ready_lies faults report for a check they do not run.
LIE: dict[str, Any] = {"status": "healthy", "connected": True, "response_time_ms": 0.1, "error": None}


async def backend_health(request: Request) -> Response:
    services = services_of(request)
    return JSONResponse(
        {
            "status": "ok",
            "service": BACKEND_SERVICE,
            "version": __version__,
            "uptime_seconds": services.uptime_seconds,
            "connections": services.hub.connection_count,
        }
    )


async def backend_ready(request: Request) -> Response:
    services = services_of(request)
    analytics = services.analytics
    if services.settings.faults.ready_lies:
        checks = {
            "database": LIE,
            "redis": await redis_check(services),
            "clickhouse": LIE if analytics is not None else NOT_CONFIGURED,
        }
        return JSONResponse({"status": "healthy", "service": BACKEND_SERVICE, "checks": checks})

    async def not_configured() -> dict[str, Any]:
        return NOT_CONFIGURED

    database, redis, clickhouse = await asyncio.gather(
        probe(services.store.ping),
        redis_check(services),
        probe(analytics.ping) if analytics is not None else not_configured(),
    )
    # Only the database is required; an optional dependency that is configured but
    # down degrades the service (200) rather than taking it out of rotation (503).
    if database["status"] != "healthy":
        status, code = "unhealthy", 503
    elif "unhealthy" in (redis["status"], clickhouse["status"]):
        status, code = "degraded", 200
    else:
        status, code = "healthy", 200
    body = {
        "status": status,
        "service": BACKEND_SERVICE,
        "checks": {"database": database, "redis": redis, "clickhouse": clickhouse},
    }
    return JSONResponse(body, status_code=code)


async def auth_health(request: Request) -> Response:
    services = services_of(request)
    return JSONResponse(
        {
            "status": "healthy",
            "service": AUTH_SERVICE,
            "version": __version__,
            "uptime_seconds": services.uptime_seconds,
            "mode": services.settings.mode,
        }
    )


async def auth_ready(request: Request) -> Response:
    services = services_of(request)
    if services.settings.faults.ready_lies:
        checks = {"database": LIE, "redis": await redis_check(services)}
        return JSONResponse({"status": "ready", "checks": checks})
    database, redis = await asyncio.gather(probe(services.store.ping), redis_check(services))
    checks = {"database": database, "redis": redis}
    ok = all(c["status"] in ("healthy", "not_configured") for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "service": AUTH_SERVICE, "checks": checks},
        status_code=200 if ok else 503,
    )


async def redis_check(services: Services) -> dict[str, Any]:
    """The redis check: not_configured only when REDIS_URL is unset (or fault
    ready_hides_redis says so); faults ready_lies and ready_lies_redis skip the probe."""
    faults = services.settings.faults
    if not services.settings.redis_url or faults.ready_hides_redis:
        return NOT_CONFIGURED
    if faults.ready_lies or faults.ready_lies_redis:
        return LIE
    return await probe(services.sessions.ping)
