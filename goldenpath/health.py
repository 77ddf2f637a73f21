"""Liveness and readiness of the target's HTTP services, as the protocol defines them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from goldenpath.config import Settings
from goldenpath.probes import http_get, service_name


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    url: str
    live: bool
    identity: str | None
    ready: str
    checks: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.live and not self.problem


# (name, base-URL attribute, readiness path, the identity its /health must report)
SERVICES = (
    ("auth", "auth_service_url", "/health/ready", "auth-service"),
    ("backend", "backend_url", "/api/health/ready", None),
)


def check_service(name: str, base: str, ready_path: str, expected: str | None,
                  timeout_s: float) -> ServiceHealth:
    started = time.perf_counter()
    live = http_get(f"{base}/health", timeout_s)
    latency_ms = (time.perf_counter() - started) * 1000
    if live is None:
        return ServiceHealth(name, base, False, None, "unknown", latency_ms=latency_ms,
                             problem=f"nothing answers {base}/health within {timeout_s:g}s")
    identity = service_name(live)
    if live.status != 200:
        return ServiceHealth(name, base, False, identity, "unknown", latency_ms=latency_ms,
                             problem=f"{base}/health answered HTTP {live.status}")
    if expected and identity != expected:
        return ServiceHealth(name, base, True, identity, "unknown", latency_ms=latency_ms,
                             problem=f"{base} is {identity or 'an unidentified service'}, "
                                     f"not the {expected}")
    ready = http_get(f"{base}{ready_path}", timeout_s)
    body = ready.json() if ready else None
    if not isinstance(body, dict):
        return ServiceHealth(name, base, True, identity, "unknown", latency_ms=latency_ms,
                             problem=f"{base}{ready_path} gave no readiness JSON")
    checks = {
        dep: str(check.get("status", "?")) if isinstance(check, dict) else str(check)
        for dep, check in (body.get("checks") or {}).items()
    }
    status = str(body.get("status", "?"))
    problem = "" if ready and ready.status == 200 else f"not ready (HTTP {ready.status if ready else '?'})"
    return ServiceHealth(name, base, True, identity, status, checks, latency_ms, problem)


def check_target(settings: Settings) -> list[ServiceHealth]:
    """Both services, probed concurrently."""
    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        futures = [
            pool.submit(check_service, name, getattr(settings, attr), path, expected, settings.timeout_s)
            for name, attr, path, expected in SERVICES
        ]
    return [future.result() for future in futures]
