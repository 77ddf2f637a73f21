"""Which probes check a profile's target: the HTTP services, the socket, the data services."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from functools import partial

from goldenpath.checks.probes import (
    Probe,
    probe_clickhouse,
    probe_liveness,
    probe_postgres,
    probe_readiness,
    probe_redis,
    who_answers,
)
from goldenpath.client.auth import AuthClient, Tokens, new_http_client
from goldenpath.client.websocket import connect
from goldenpath.core.errors import AuthRefused, GoldenPathError, ProbeFailure, ProbeSkipped
from goldenpath.core.http import AUTH_IDENTITY
from goldenpath.core.settings import Settings
from goldenpath.protocol.contract import E2E_KEY_SETTING

NamedProbe = tuple[str, str, Probe]
# The socket probe's calls: log in, upgrade, connection_established, close, log out.
WEBSOCKET_CALLS = 5


def http_probes(settings: Settings) -> list[NamedProbe]:
    """Liveness (with each service's identity) and readiness of the auth service and backend."""
    auth, backend = settings.auth_service_url, settings.backend_url
    return [
        ("auth /health", auth, partial(probe_liveness, identity=AUTH_IDENTITY)),
        # Each readiness in its own service's document (docs/protocol.md 3.1, 3.2).
        ("auth ready", f"{auth}/health/ready", partial(probe_readiness, service="auth")),
        ("backend /health", backend, probe_liveness),
        ("backend ready", f"{backend}/api/health/ready", partial(probe_readiness, service="backend")),
    ]


def websocket_probe(settings: Settings) -> NamedProbe:
    """The upgrade through to connection_established, as a probe user of the E2E bypass."""

    def probe(url: str, timeout_s: float) -> str:
        try:
            return asyncio.run(_bounded_websocket(settings, url, timeout_s))
        except AuthRefused as exc:
            raise ProbeFailure(f"the probe user was refused: {exc}") from None
        except GoldenPathError as exc:
            raise ProbeFailure(f"{exc}{who_answers(url, 80, timeout_s, 'an HTTP server')}") from None

    return ("websocket", settings.websocket_url, probe)


async def _bounded_websocket(settings: Settings, url: str, timeout_s: float) -> str:
    """The socket probe under a hard deadline: each of its calls has its own timeout, but a
    peer that drips bytes could otherwise keep one of them going."""
    deadline_s = WEBSOCKET_CALLS * timeout_s
    guard = asyncio.timeout(deadline_s)
    try:
        async with guard:
            return await _websocket(settings, url, timeout_s)
    except GoldenPathError:
        raise  # a call's own timeout or refusal, saying what it waited for
    except TimeoutError:
        if not guard.expired():
            raise ProbeFailure(f"{url} timed out") from None
        raise ProbeFailure(f"{url} did not reach connection_established within {deadline_s:g}s") from None


async def _websocket(settings: Settings, url: str, timeout_s: float) -> str:
    if not settings.get(E2E_KEY_SETTING):
        return await _refused_without_token(url, timeout_s)
    email = f"goldenpath-probe-{secrets.token_hex(4)}@goldenpath.test"
    connect_ns = await open_once(settings, url, timeout_s, lambda auth: auth.e2e_login(email))
    return f"connection_established in {connect_ns / 1e6:.0f} ms"


async def open_once(settings: Settings, url: str, timeout_s: float,
                    user: Callable[[AuthClient], Awaitable[Tokens]]) -> int:
    """A test user opens the socket through to connection_established, closes it and logs
    out; the connection time in ns."""
    async with new_http_client(max_connections=2) as http:
        auth = AuthClient(settings.auth_service_url, http, timeout_s=timeout_s,
                          e2e_key=settings.get(E2E_KEY_SETTING))
        tokens = await user(auth)
        connection = await connect(url, tokens.access_token, timeout_s=timeout_s)
        await connection.close()
        if tokens.refresh_token:
            await auth.logout(tokens.refresh_token)
    return connection.connect_ns


async def _refused_without_token(url: str, timeout_s: float) -> str:
    try:
        connection = await connect(url, None, timeout_s=timeout_s)
    except AuthRefused:
        raise ProbeSkipped(f"{url} refuses an upgrade without a token, as it should; set "
                           f"{E2E_KEY_SETTING} to probe through to connection_established") from None
    await connection.close()
    raise ProbeFailure(f"{url} accepted a WebSocket without a token: authentication is not enforced")


def all_probes(settings: Settings) -> list[NamedProbe]:
    """Every service the profile names: HTTP, the socket, and the configured data services."""
    return [*http_probes(settings), websocket_probe(settings), *data_probes(settings)]


def data_probes(settings: Settings) -> list[NamedProbe]:
    """One probe for each data service the profile configures; none for the others."""
    configured = [
        ("postgres", settings.database_url, probe_postgres),
        ("redis", settings.redis_url, probe_redis),
        ("clickhouse", settings.clickhouse_url, probe_clickhouse),
    ]
    return [(name, url, probe) for name, url, probe in configured
            if url and not url.startswith("sqlite")]
