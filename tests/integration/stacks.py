"""Starting refstack for the tests, always through goldenpath.core.stack, on fresh loopback ports."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from goldenpath.core import stack
from goldenpath.core.http import free_port
from goldenpath.core.settings import Settings, load_settings
from goldenpath.testkit.support import service_missing

from .wire import Target

REPO = Path(__file__).resolve().parents[2]
JWT_SECRET = "goldenpath-integration-tests-signing-key-0123456789"
E2E_KEY = "goldenpath-integration-e2e-bypass-key"
# The defaults the tests hold refstack to: MAX_TEXT is the protocol's, the byte limits are
# docs/refstack.md's (the protocol leaves them open).
MAX_TEXT = 10_000
MAX_FRAME_BYTES = 65_536
MAX_BODY_BYTES = 65_536

# Every setting the tests rely on is pinned, so a developer's exported DATABASE_URL or
# REFSTACK_FAULTS cannot leak into a stack that is meant to be plain SQLite and healthy.
# An empty value means "unset" to refstack: the limits are left at their defaults (which
# is what is under test) while a value exported in the shell still cannot leak in.
BASE_ENV: Mapping[str, str] = {
    "REFSTACK_MODE": "local",
    "JWT_SECRET_KEY": JWT_SECRET,
    "E2E_OAUTH_SIMULATION_KEY": E2E_KEY,
    "DATABASE_URL": "",
    "REDIS_URL": "",
    "CLICKHOUSE_URL": "",
    "REFSTACK_FAULTS": "",
    # Small but not zero, so runs interleave with other traffic as they would for real.
    "REFSTACK_STEP_DELAY_MS": "2",
    # Two tool pairs, so "agent_thinking between pairs" and pair matching are exercised.
    "REFSTACK_AGENT_TOOLS": "2",
    "REFSTACK_MAX_TEXT": "",
    "REFSTACK_MAX_FRAME_BYTES": "",
    "REFSTACK_MAX_BODY_BYTES": "",
    "ACCESS_TOKEN_TTL_SECONDS": "",
    "REFRESH_TOKEN_TTL_SECONDS": "",
    "JWT_ISSUER": "",
    "JWT_AUDIENCE": "",
}


def loopback_settings() -> Settings:
    return load_settings(
        REPO,
        "local",
        environ={
            "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
            "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        },
    )


def spec(
    state_dir: Path, *, faults: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[Settings, stack.StackSpec]:
    settings = loopback_settings()
    extra = {**BASE_ENV, **(env or {})}
    return settings, stack.refstack_spec(settings, faults=faults, state_dir=state_dir, extra_env=extra)


@contextmanager
def launched(
    state_dir: Path,
    *,
    faults: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Target]:
    """A refstack for the duration of the block, healthy (both /health answer 200) on entry."""
    settings, stack_spec = spec(state_dir, faults=faults, env=env)
    with stack.running(stack_spec) as running:
        e2e_key = stack_spec.env.get("E2E_OAUTH_SIMULATION_KEY") or None
        yield Target(
            auth_url=settings.auth_service_url,
            backend_url=settings.backend_url,
            ws_url=settings.websocket_url,
            pid=running.pid,
            jwt_secret=stack_spec.env["JWT_SECRET_KEY"],
            e2e_key=e2e_key,
            env=dict(stack_spec.env),
        )


def refused_start(
    state_dir: Path, *, faults: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run refstack where it must refuse to start: its exit code and its own stderr, apart.

    goldenpath.core.stack merges the two streams into one log, which cannot show that stderr
    holds exactly one line, so the same command and environment are run here directly.
    A refstack that wrongly starts serving is killed by the timeout (TimeoutExpired).
    """
    _, stack_spec = spec(state_dir, faults=faults, env=env)
    return subprocess.run(
        stack_spec.command,
        env={**os.environ, **stack_spec.env},
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
        cwd=REPO,
    )


def require(target: Target, variable: str, service: str) -> str:
    """The URL of a real service the test needs from this stack, or the missing-service verdict."""
    value = target.env.get(variable, "")
    if not value:
        service_missing(service, f"{variable} is not set or does not answer")
    return value
