"""Which probes check a profile's target: the HTTP services, the socket, the data services."""

from __future__ import annotations

from functools import partial

from goldenpath.config import Settings
from goldenpath.service_probes import (
    Probe,
    probe_clickhouse,
    probe_liveness,
    probe_postgres,
    probe_readiness,
    probe_redis,
)

AUTH_IDENTITY = "auth-service"
BACKEND_IDENTITY = "backend"

NamedProbe = tuple[str, str, Probe]


def http_probes(settings: Settings) -> list[NamedProbe]:
    """Liveness (with each service's identity) and readiness of the auth service and backend."""
    auth, backend = settings.auth_service_url, settings.backend_url
    return [
        ("auth /health", auth, partial(probe_liveness, identity=AUTH_IDENTITY)),
        ("auth ready", f"{auth}/health/ready", probe_readiness),
        ("backend /health", backend, partial(probe_liveness, identity=BACKEND_IDENTITY)),
        ("backend ready", f"{backend}/api/health/ready", probe_readiness),
    ]


def data_probes(settings: Settings) -> list[NamedProbe]:
    """One probe for each data service the profile configures; none for the others."""
    configured = [
        ("postgres", settings.database_url, probe_postgres),
        ("redis", settings.redis_url, probe_redis),
        ("clickhouse", settings.clickhouse_url, probe_clickhouse),
    ]
    return [(name, url, probe) for name, url, probe in configured
            if url and not url.startswith("sqlite")]
