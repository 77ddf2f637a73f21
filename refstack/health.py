"""Readiness probes: each one really talks to its dependency, with a short timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

PROBE_TIMEOUT = 2.0

NOT_CONFIGURED: dict[str, Any] = {
    "status": "not_configured",
    "connected": False,
    "response_time_ms": None,
    "error": None,
}


async def probe(check: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """Run one check: {"status","connected","response_time_ms","error"}."""
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(check(), timeout=PROBE_TIMEOUT)
    except TimeoutError:
        error = f"no answer within {PROBE_TIMEOUT:g} s"
    except Exception as exc:  # any failure at all means "not ready"; the text says which
        error = str(exc) or type(exc).__name__
    elapsed = round((time.perf_counter() - started) * 1000, 3)
    return {
        "status": "healthy" if error is None else "unhealthy",
        "connected": error is None,
        "response_time_ms": elapsed,
        "error": error,
    }
