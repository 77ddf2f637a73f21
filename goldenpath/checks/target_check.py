"""Before a layer's tests: does the target speak the protocol at all? One line if not.

A target that is down, speaks something else (an HTTP server without a WebSocket, a socket
that sends garbage), accepts and never answers, or cannot give us a test user would
otherwise fail every test of the layer at length. Run as ``python -m goldenpath.checks.target_check``
with the layer's settings in the environment; exit 0, or 1 with one line saying what is
wrong and what to do.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from functools import partial
from pathlib import Path

from goldenpath.checks.health import open_once
from goldenpath.checks.probes import ProbePolicy, probe_liveness, run_probes
from goldenpath.client.auth import AuthClient, Tokens
from goldenpath.core.errors import ConfigError, GoldenPathError, HttpStatusError
from goldenpath.core.http import AUTH_IDENTITY
from goldenpath.core.settings import Settings, load_settings
from goldenpath.protocol.contract import E2E_KEY_SETTING

# The platform answered but failed inside (501, "not implemented", means no such endpoint).
PLATFORM_FAILING = frozenset({500, 502, 503, 504})


def check_http(settings: Settings) -> str | None:
    policy = ProbePolicy(timeout_s=settings.timeout_s, retries=1, interval_s=0.5,
                         deadline_s=settings.timeout_s * 2)
    results = run_probes([
        ("auth service", settings.auth_service_url, partial(probe_liveness, identity=AUTH_IDENTITY)),
        ("backend", settings.backend_url, probe_liveness),
    ], policy)
    failed = next((r for r in results if not r.ok), None)
    return f"{failed.name}: {failed.detail}" if failed else None


async def obtain_test_user(auth: AuthClient, settings: Settings) -> Tokens:
    """The E2E bypass when the profile has its key; else a password user of our own."""
    email = f"goldenpath-check-{secrets.token_hex(4)}@goldenpath.test"
    try:
        return await auth.new_test_user(email)
    except HttpStatusError as exc:
        if settings.get(E2E_KEY_SETTING) or exc.status in PLATFORM_FAILING:
            raise
        raise GoldenPathError(f"cannot get a test user by registering ({exc}); set "
                              f"{E2E_KEY_SETTING} in .env for this profile") from None


async def check_socket(settings: Settings) -> None:
    await open_once(settings, settings.websocket_url, settings.timeout_s,
                    lambda auth: obtain_test_user(auth, settings))


def problem(settings: Settings) -> str | None:
    http = check_http(settings)
    if http:
        return http
    try:
        asyncio.run(check_socket(settings))
    except HttpStatusError as exc:
        # A 5xx is the platform failing, not speaking something else: diagnosing that
        # (a database down behind a readiness that lies, say) is what the layers are for.
        if exc.status in PLATFORM_FAILING:
            print(f"target check: {exc}; running the layer's tests to find out why", file=sys.stderr)
            return None
        return str(exc)
    except GoldenPathError as exc:
        return str(exc)
    return None


def main() -> int:
    try:
        settings = load_settings(Path.cwd())
    except ConfigError as exc:
        print(f"target check: {exc}", file=sys.stderr)
        return 2
    found = problem(settings)
    if found:
        print(f"target check failed, the layer's tests did not run: {found}", file=sys.stderr)
        return 1
    print(f"target check: {settings.backend_url} speaks the golden-path protocol")
    return 0


if __name__ == "__main__":
    sys.exit(main())
